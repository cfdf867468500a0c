"""Ask a running ``seq2labels serve MODEL`` for tag suggestions (standard library only).

    python suggest.py --url http://localhost:8000 --top-k 3 "first text" "second text"
    python suggest.py < texts.txt          # one text per line

Prints each text with its suggested tags in the model's order, each with its probability.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request


def suggest(texts: list[str], url: str = "http://localhost:8000", top_k: int = 3,
            timeout: float = 30.0) -> list[dict]:
    """POST /predict; one ``{"labels": [...], "probabilities": [...], "score": ...}`` per text."""
    body = json.dumps({"texts": texts, "top_k": top_k}).encode("utf-8")
    request = urllib.request.Request(url.rstrip("/") + "/predict", data=body, method="POST",
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)["predictions"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("texts", nargs="*", help="texts to tag (default: one per line from stdin)")
    parser.add_argument("--url", default="http://localhost:8000", help="where seq2labels serve listens")
    parser.add_argument("--top-k", type=int, default=3, help="at most this many tags per text")
    args = parser.parse_args(argv)
    texts = args.texts or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    try:
        predictions = suggest(texts, args.url, args.top_k)
    except urllib.error.HTTPError as exc:  # the service answers every bad request with a JSON message
        print(f"suggest: HTTP {exc.code}: {exc.read().decode('utf-8', 'replace')}", file=sys.stderr)
        return 1
    except urllib.error.URLError as exc:
        print(f"suggest: cannot reach {args.url} ({exc.reason}); is `seq2labels serve MODEL` running?",
              file=sys.stderr)
        return 1
    for text, prediction in zip(texts, predictions):
        print(text)
        for rank, (tag, probability) in enumerate(zip(prediction["labels"], prediction["probabilities"]), 1):
            print(f"  {rank}. {tag:<16} {probability:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
