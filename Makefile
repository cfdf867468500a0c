# Two entry points: `make demo` and `make test`. Each creates .venv on first use.
# torch is installed first and pinned: an unpinned torch pulls a multi-GB CUDA build.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.seq2labels-installed

.PHONY: install demo test bench clean chromium

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/seq2labels demo

# The report test renders HTML in Debian's headless Chromium; install it when missing (needs root).
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)) ; } || echo "chromium not installed: the browser test will be skipped"

test: $(STAMP) chromium
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache
