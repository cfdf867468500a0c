"""Networks only (nn.Module + a frozen config): encoders/ (one file per encoder family), the SGM
decoder (sgm, attention, config) and the baseline networks (mlp, cnn, cnn_rnn).

May import decoding (the step-model protocol and teacher forcing), evaluation, data, utils and errors;
never training, pipeline, baselines, experiments or apps.
"""
