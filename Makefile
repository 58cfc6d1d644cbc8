# tap3d: `make render` builds the demo dataset, `make train` pre-trains on a 64 px `--preset tap` build (CPU, minutes),
# `make test` runs the tests (`make test-fast` skips the slow ones).
# Both create the virtual environment (.venv) and install everything first.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.tap3d-installed
PYTEST_ARGS ?=

.PHONY: install system-deps render train test test-fast gpu-bundle clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	# robosuite's robot and gripper meshes for the part_large category-level set
	# (tap3d.clouds.robot_parts); only its files are needed, none of its dependencies
	$(BIN)/python -m pip install --quiet --no-deps robosuite==1.5.2
	$(BIN)/python -c "import open3d, pytorch3d, torch; print('torch', torch.__version__, '| pytorch3d', pytorch3d.__version__, '| open3d', open3d.__version__)"
	touch $(STAMP)

# open3d's native library links libusb-1.0; install the Debian package where it is missing.
system-deps:
	@if ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then :; else \
	  echo "installing libusb-1.0-0 (needed by open3d)"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get install -y -q libusb-1.0-0 || \
	  { $$SUDO apt-get update -q && $$SUDO apt-get install -y -q libusb-1.0-0; }; fi

# The demo: the real meshes that pybullet ships (docs/building.md), 10 views at 224 x 224.
render: install
	$(BIN)/tap-cli build-dataset pybullet -o data/demo.zarr --views 10 --image-size 224 --shard-size 8 --overwrite
	$(BIN)/tap-cli preview data/demo.zarr -o data/demo.png --objects 12

# A few minutes of TAP pre-training on CPU (configs/demo-cpu.yaml); run folder runs/demo.
# It trains on its own build of the demo meshes, what TAP pre-trains on at 64 px: one mesh per
# demo category (10), --preset tap (12 MVCNN views at 30 degrees elevation, plain shading).
DEMO_TAP := data/demo-tap64.zarr
$(DEMO_TAP): | $(STAMP)
	$(BIN)/tap-cli build-dataset pybullet -o $@ --preset tap --image-size 64 --points 1024 --limit 1 --shard-size 4 --quiet

train: install $(DEMO_TAP)
	rm -rf runs/demo
	$(BIN)/tap-cli train $(DEMO_TAP) --out runs/demo --config configs/demo-cpu.yaml --device cpu
	$(BIN)/tap-cli inspect runs/demo -o runs/demo/sheet.png

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The tests without the `slow` marker (each of those takes more than ~30 s on 2 cores).
test-fast: install
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

# The GPU check's bundle (docs/gpu.md): the wheels a torch-only GPU machine lacks and the data
# the check uses, in gpu-bundle/ (git-ignored); there, `benchmarks/gpu.sh --out OUT` runs it.
gpu-bundle: install
	$(BIN)/python benchmarks/gpu_bundle.py --out gpu-bundle --overwrite

clean:
	rm -rf data/demo.zarr data/demo.png $(DEMO_TAP) runs/demo .pytest_cache
