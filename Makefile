# The two commands: `make dev` runs the app, `make test` runs the tests.
.PHONY: dev test lint bench help compose-test

help:
	@echo "make dev    install what is missing and run the whole stack (Ctrl-C stops it); OPS=1: Prometheus too"
	@echo "make test   install what is missing and run every test on the real services"
	@echo "make lint   ruff"
	@echo "make bench  the benchmark scripts"
	@echo "make compose-test  docker-compose.yml on a real Docker engine (build, up, story, scale, kill, two hosts over TLS, down)"

dev:
	deploy/dev.sh

test:
	deploy/test.sh

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

bench:
	deploy/bench.sh

compose-test:
	tests/compose/run.sh
