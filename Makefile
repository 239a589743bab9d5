# mmext: the commands the README names.
#   make install   the pinned OpenMMLab stack + mmext (editable) into $(VENV); skipped when done
#   make demo      install if needed, then the main job on embedded data
#   make demo-clip install if needed, then build the demo CLIP into the cache (once; ~8 min)
#   make test      install if needed, then the tests
#   make bench     the benchmarks under benchmarks/ (adds brevitas, the comparison library)
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export PYTHONUNBUFFERED := 1

.PHONY: install data demo demo-clip test lint bench

install:
	@bash tools/install.sh $(VENV)

data: install
	$(PY) tools/data/make_fashion_scenes.py
	$(PY) tools/data/make_fashion_scenes.py --out data/fashion_scene_items --min-items 1 \
		--max-items 1 --num-train 3000 --num-val 500
	$(PY) tools/data/make_fashion_retrieval.py
	$(PY) tools/data/make_fewshot_split.py
	$(PY) tools/data/make_simulated_fmri.py

demo: install
	$(PY) tools/demo.py

demo-clip: install
	$(PY) tools/clip/train_demo_clip.py

# a worker per core (pytest-xdist), one thread each (tests/conftest.py): most tests spend
# their time in one Python thread (imports, subprocess start-up); PYTEST_ARGS= runs them in one
PYTEST_ARGS ?= -n auto
test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .

bench: install
	$(VENV)/bin/pip install -q brevitas==0.13.4 -c constraints.txt
	$(PY) benchmarks/quant_overhead.py
