# The two commands of the README.
.PHONY: serve test install

# install everything, then run the gateway on its embedded default (a real model on this CPU)
serve:
	@scripts/install.sh
	.venv/bin/maas serve

# install everything (test tools included), then run the whole test suite
test:
	@scripts/install.sh test
	.venv/bin/python -m pytest -q -p no:cacheprovider

install:
	@scripts/install.sh test
