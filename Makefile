# Two commands for a fresh machine: `make demo` and `make test`. Both create .venv and install into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
DEMO_DIR ?= demo_runs
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install test demo clean
install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -r requirements.txt
	touch $@

test: install
	$(PY) -m pytest -q tests

# intermediate (NLI) -> target (PAWS-X) -> zero-shot eval (de, en, ja) on the bundled real samples, tiny model.
# Each phase's full output goes to $(DEMO_LOGS)/NAME.log; a failing phase shows the end of its log.
DEMO_ARGS := --use_cpu --per_device_train_batch_size 16 --learning_rate 1e-3 --disable_tqdm true
DEMO_LOGS := $(DEMO_DIR)/logs
logged = bash -c '"$$@" > $(DEMO_LOGS)/$(1).log 2>&1 || { tail -n 20 $(DEMO_LOGS)/$(1).log; exit 1; }' _
demo: install
	@rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_LOGS)
	@echo "model:   a tiny random XLM-R-shaped encoder (2 layers, its own sentencepiece vocabulary) -> $(DEMO_DIR)/tiny_model"
	@$(call logged,tiny_model) $(PY) -m utils.tiny_model $(DEMO_DIR)/tiny_model
	@echo "phase 1: NLI intermediate task on XNLI English pairs, 2 epochs -> $(DEMO_DIR)/mnli"
	@$(call logged,phase1) $(PY) run_intermediate.py --model_name_or_path $(DEMO_DIR)/tiny_model --task mnli \
	    --do_train --train_file tests/fixtures/xtreme/xnli/train-en.tsv \
	    --validation_file tests/fixtures/xtreme/xnli/dev-en.tsv --num_train_epochs 2 --output_dir $(DEMO_DIR)/mnli \
	    $(DEMO_ARGS)
	@echo "phase 2: PAWS-X on its English pairs, fresh head, 2 epochs -> $(DEMO_DIR)/mnli-pawsx"
	@$(call logged,phase2) $(PY) run_target.py --model_name_or_path $(DEMO_DIR)/mnli --task pawsx \
	    --data_dir tests/fixtures/xtreme --do_train --num_train_epochs 2 --output_dir $(DEMO_DIR)/mnli-pawsx \
	    $(DEMO_ARGS)
	@echo "phase 3: zero-shot PAWS-X dev accuracy in de, en, ja"
	@$(call logged,phase3) $(PY) run_xtreme_eval.py --model_name_or_path $(DEMO_DIR)/mnli-pawsx --task pawsx \
	    --languages de,en,ja --data_dir tests/fixtures/xtreme --split dev --use_cpu --disable_tqdm true
	@sed -n '/^| pawsx (dev)/,$$p' $(DEMO_LOGS)/phase3.log
	@echo "the same as a grid: {none, mnli} x {pawsx, udpos} (plans/tiny_demo.yaml), then its report"
	@$(PY) -m utils.grid plans/tiny_demo.yaml --output-dir $(DEMO_DIR)/grid \
	    --set backbones.0.path=$(DEMO_DIR)/tiny_model
	@$(PY) -m utils.report $(DEMO_DIR)/grid
	@echo "logs: $(DEMO_LOGS)/"

clean:
	rm -rf $(VENV) $(DEMO_DIR)

# Speed benchmarks (benchmarks/*.py, not tests): tables on stdout, JSON in $(BENCH_DIR). The tiny model on CPU
# takes a few minutes; a real model: make bench BENCH_ARGS="--model_name_or_path DIR" (see README, Speed).
BENCH_DIR ?= outputs/benchmarks
BENCH_ARGS ?=
.PHONY: bench
bench: install
	$(PY) benchmarks/preprocessing_throughput.py --output $(BENCH_DIR)/preprocessing_throughput.json $(BENCH_ARGS)
	$(PY) benchmarks/training_throughput.py --output $(BENCH_DIR)/training_throughput.json $(BENCH_ARGS)
	$(PY) benchmarks/evaluation_throughput.py --process_rounds 1 --output $(BENCH_DIR)/evaluation_throughput.json \
	    $(BENCH_ARGS)
	$(PY) benchmarks/trainer_overhead.py --output $(BENCH_DIR)/trainer_overhead.json $(BENCH_ARGS)
