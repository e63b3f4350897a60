# The two commands of the README: `make demo` and `make test`, on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: demo test install mosquitto bench clean web chromium

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

demo: $(STAMP) web
	$(BIN)/vigil demo

# Mosquitto is a real test dependency: installed with apt-get when running as root and missing.
mosquitto:
	@if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "installing mosquitto with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null; \
	else echo "mosquitto is missing: sudo apt-get install mosquitto"; exit 1; fi

test: $(STAMP) mosquitto web chromium
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(STAMP) mosquitto
	$(BIN)/python bench/ingest_pipeline.py

clean:
	rm -rf $(VENV) *.egg-info
	rm -rf web/node_modules

# Front-end libraries of the web pages (Leaflet) from the npm registry, pinned by web/package-lock.json;
# the API serves them from web/node_modules, nothing is fetched at run time.
WEB_STAMP := web/node_modules/.installed-$(shell cksum web/package-lock.json | cut -d' ' -f1)
$(WEB_STAMP): web/package-lock.json
	@if command -v npm >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "installing npm with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; \
	else echo "npm is missing: sudo apt-get install npm"; exit 1; fi
	cd web && npm ci --no-audit --no-fund --loglevel=error
	rm -f web/node_modules/.installed-* && touch $@

web: $(WEB_STAMP)

# The browser tests drive Debian's headless Chromium through Playwright (no browser download).
chromium:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "installing chromium with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "chromium is missing (browser tests will skip): sudo apt-get install chromium"; fi
