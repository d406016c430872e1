# Set-up is part of every target: the virtual environment is (re)built from requirements.txt when it is missing or
# older than requirements.txt / pyproject.toml, and sr_lib is installed into it in editable mode.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test demo reference bench notebooks lab clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name sr_lib --display-name "Python (sr_lib)" > /dev/null
	touch $(STAMP)

# The tests: CPU only, tiny models, seconds each.
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --durations=15

# The main job: every loss variant fine-tuned from the shipped SRResNet on the embedded photographs, then the report
# (CPU, offline). Set5 (evaluation only, never trained on) is added to the report when ../shared/sr-benchmarks is there.
SET5 := $(wildcard ../shared/sr-benchmarks/Set5/HR)
SHIPPED := saved_models/srresnet_x4/srresnet_x4.keras
demo: $(STAMP)
	$(BIN)/python -m sr_lib compare --preset demo --pretrained $(SHIPPED) $(if $(SET5),--benchmark $(SET5)) --out runs/demo

# The shipped reference loss comparison (results/loss_comparison_x4, its README has the probes behind the recipe) and
# the shipped SRGAN (saved_models/srgan_x4): four losses and a seed repeat from the shipped SRResNet on T91 + BSD200,
# Set5 and Set14 for evaluation only. About an hour on a 2-core CPU with bf16; re-running resumes.
TRAIN_291 := ../shared/sr-train
BENCHMARKS := ../shared/sr-benchmarks
REFERENCE_VARIANTS := srresnet_mse,mse_modified,mse_least_squares,mse_relativistic,mse_modified@seed1
reference: $(STAMP)
	$(BIN)/python -m sr_lib compare --preset reference --pretrained $(SHIPPED) --data $(TRAIN_291) --vgg-weights none \
		--benchmark $(BENCHMARKS)/Set5/HR --benchmark $(BENCHMARKS)/Set14/HR --variants $(REFERENCE_VARIANTS) \
		--out runs/loss_comparison_x4
	$(BIN)/python scripts/publish_comparison.py runs/loss_comparison_x4 results/loss_comparison_x4
	$(BIN)/python scripts/ship_model.py runs/loss_comparison_x4/variants/mse_modified saved_models/srgan_x4 \
		--name srgan_x4 --checkpoint final

# Throughput of the training steps and the input pipeline, then of inference (every engine, whole image / tiled,
# float32 / bf16), on this machine. BENCH_TAG names other result files, e.g. for a run under ONEDNN_MAX_CPU_ISA=AVX2.
BENCH_TAG :=
bench: $(STAMP)
	$(BIN)/python benchmarks/training.py --out benchmarks/results$(BENCH_TAG).json
	$(BIN)/python benchmarks/inference.py --out benchmarks/inference$(BENCH_TAG).json

# The six numbered notebooks, executed at the demo setting on this machine and written in place with their outputs
# (notebooks/NN_name.py are the sources; see notebooks/README.md). Their runs start afresh under runs/notebooks.
notebooks: $(STAMP)
	rm -rf runs/notebooks
	$(BIN)/python scripts/notebook_runner.py --setting demo

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf $(VENV) runs .pytest_cache
