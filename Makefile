# The zoo's commands. Every target that runs Python first makes .venv from requirements.txt.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum < requirements.txt | cut -d' ' -f1)
ARGS ?=

.PHONY: venv test test-slow lint format tensorboard serve serve-config bench bench-train bench-serve bench-gpu clean

venv: $(STAMP)
$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	rm -f $(VENV)/.installed-* && touch $@

# ---- training: `make train-<recipe>` runs `python -m training train <recipe> $(ARGS)` ----
# (`python -m training list` shows every recipe; offline tfds files go in TFDS_MANUAL_DIR)
TFDS_MANUAL_DIR ?= $(abspath ../shared/data/tfds-manual)
export TFDS_MANUAL_DIR
TRAIN = $(PY) -m training train $(@:train-%=%) $(ARGS)
.PHONY: train-cnn train-gan train-gan-fashion train-wgan-gp train-autoencoder train-vae \
        train-lstm-imdb train-char-rnn train-transformer-pt-en train-gpt-shakespeare-char \
        train-gpt-shakespeare-char-cpu train-bert-mlm train-bert-imdb train-resnet18-cifar10 \
        train-resnet34-cifar10 train-resnet50-cifar10 train-vgg11-cifar10 train-vgg16-cifar10 \
        train-inception_v3-cifar10 train-googlenet-cifar10 train-mobilenet_v2-cifar10 \
        train-mobilenet_v3_small-cifar10 train-efficientnet_b0-cifar10 train-vit_tiny16-cifar10 \
        train-resnet train-cnn-classic

train-cnn: venv ; $(TRAIN)
train-cnn-classic: venv ; $(TRAIN)
.PHONY: train-cnn-pruned
train-cnn-pruned: venv ; $(TRAIN)
.PHONY: train-cnn-teacher train-cnn-distilled train-cnn-adversarial
train-cnn-teacher: venv ; $(TRAIN)
train-cnn-distilled: venv ; $(TRAIN)
train-cnn-adversarial: venv ; $(TRAIN)
.PHONY: train-unet-digit-scenes train-deeplabv3_plus-digit-scenes train-unet-oxford-pet \
        train-deeplabv3_plus-oxford-pet
train-unet-digit-scenes: venv ; $(TRAIN)
train-deeplabv3_plus-digit-scenes: venv ; $(TRAIN)
train-unet-oxford-pet: venv ; $(TRAIN)
train-deeplabv3_plus-oxford-pet: venv ; $(TRAIN)
.PHONY: train-cnn-digits0to4 train-cnn-digits5to9 train-cnn-digits5to9-scratch
train-cnn-digits0to4: venv ; $(TRAIN)
train-cnn-digits5to9: venv ; $(TRAIN)
train-cnn-digits5to9-scratch: venv ; $(TRAIN)
.PHONY: train-simclr-digits train-simsiam-digits train-swav-digits train-cnn-federated
train-simclr-digits: venv ; $(TRAIN)
train-simsiam-digits: venv ; $(TRAIN)
train-swav-digits: venv ; $(TRAIN)
train-cnn-federated: venv ; $(TRAIN)
.PHONY: train-r2plus1d-moving-digits train-frames-moving-digits train-convlstm-moving-digits \
        train-vivit-moving-digits train-r2plus1d_18-ucf101
train-r2plus1d-moving-digits: venv ; $(TRAIN)
train-frames-moving-digits: venv ; $(TRAIN)
train-convlstm-moving-digits: venv ; $(TRAIN)
train-vivit-moving-digits: venv ; $(TRAIN)
train-r2plus1d_18-ucf101: venv ; $(TRAIN)
.PHONY: train-captioner-digit-scenes train-neuraltalk-digit-scenes train-captioner-coco \
        train-clip-digit-scenes train-vqa-digit-scenes train-clip-coco
train-captioner-digit-scenes: venv ; $(TRAIN)
train-neuraltalk-digit-scenes: venv ; $(TRAIN)
train-captioner-coco: venv ; $(TRAIN)
train-clip-digit-scenes: venv ; $(TRAIN)
train-vqa-digit-scenes: venv ; $(TRAIN)
train-clip-coco: venv ; $(TRAIN)
.PHONY: train-ds_cnn-spoken-digits train-ds_cnn-speech-commands crossval-ds_cnn \
        train-crnn-spoken-digits train-crnn-spoken-digit-strings train-conformer-spoken-digit-strings
train-ds_cnn-spoken-digits: venv ; $(TRAIN)
train-ds_cnn-speech-commands: venv ; $(TRAIN)
train-crnn-spoken-digits: venv ; $(TRAIN)
train-crnn-spoken-digit-strings: venv ; $(TRAIN)
train-conformer-spoken-digit-strings: venv ; $(TRAIN)
# leave one speaker out: five runs, each tested on a speaker it never heard
crossval-ds_cnn: venv
	$(PY) -m training crossval ds_cnn-spoken-digits $(ARGS)
.PHONY: train-sasrec-generated train-two_tower-generated train-dcn-generated \
        train-sasrec-movielens-1m train-two_tower-movielens-100k
train-sasrec-generated: venv ; $(TRAIN)
train-two_tower-generated: venv ; $(TRAIN)
train-dcn-generated: venv ; $(TRAIN)
train-sasrec-movielens-1m: venv ; $(TRAIN)
train-two_tower-movielens-100k: venv ; $(TRAIN)
.PHONY: train-ppo-cartpole train-dqn-cartpole train-ppo-lunarlander train-ddpg-pendulum
train-ppo-cartpole: venv ; $(TRAIN)
train-dqn-cartpole: venv ; $(TRAIN)
train-ppo-lunarlander: venv ; $(TRAIN)
train-ddpg-pendulum: venv ; $(TRAIN)
.PHONY: train-fcos-digit-scenes train-fcos-voc
train-fcos-digit-scenes: venv ; $(TRAIN)
train-fcos-voc: venv ; $(TRAIN)
train-gan: venv ; $(TRAIN)
train-gan-fashion: venv ; $(TRAIN)
train-wgan-gp: venv ; $(TRAIN)
train-autoencoder: venv ; $(TRAIN)
train-vae: venv ; $(TRAIN)
train-lstm-imdb: venv ; $(TRAIN)
train-char-rnn: venv ; $(TRAIN)
train-transformer-pt-en: venv ; $(TRAIN)
train-gpt-shakespeare-char: venv ; $(TRAIN)
train-gpt-shakespeare-char-cpu: venv ; $(TRAIN)
train-bert-mlm: venv ; $(TRAIN)
train-bert-imdb: venv ; $(TRAIN)
train-resnet18-cifar10: venv ; $(TRAIN)
train-resnet34-cifar10: venv ; $(TRAIN)
train-resnet50-cifar10: venv ; $(TRAIN)
train-vgg11-cifar10: venv ; $(TRAIN)
train-vgg16-cifar10: venv ; $(TRAIN)
train-inception_v3-cifar10: venv ; $(TRAIN)
train-googlenet-cifar10: venv ; $(TRAIN)
train-mobilenet_v2-cifar10: venv ; $(TRAIN)
train-mobilenet_v3_small-cifar10: venv ; $(TRAIN)
train-efficientnet_b0-cifar10: venv ; $(TRAIN)
train-vit_tiny16-cifar10: venv ; $(TRAIN)

# ResNet-18 on CIFAR-10
train-resnet: venv ; $(PY) -m training train resnet18-cifar10 $(ARGS)

# ---- learning with less: federated learning on Flower, search on KerasTuner ----
.PHONY: federate-cnn search-cnn
federate-cnn: venv
	$(PY) -m training federate cnn-federated --clients 100 --fraction 0.1 --rounds 50 $(ARGS)

search-cnn: venv
	$(PY) -m training search cnn --space cnn-lean --trials 20 --algorithm random $(ARGS)

# ---- watching and serving ----
tensorboard: venv
	$(PY) -m tensorboard.main --logdir runs --host 127.0.0.1 --port 6006

serve: venv
	$(PY) -m serving serve exports $(ARGS)

serve-config: venv
	$(PY) -m serving config exports

# ---- quality ----
test: venv
	$(PY) -m pytest -q tests $(ARGS)

test-slow: venv
	$(PY) -m pytest -q -m slow tests $(ARGS)

lint: venv
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

# ---- benchmarks: results land in bench/results/ ----
bench: bench-train bench-serve

bench-train: venv
	$(PY) bench/bench_train.py $(ARGS)

bench-serve: venv
	$(PY) bench/bench_serve.py $(ARGS)

bench-gpu:
	KERAS_BACKEND=jax $(PYTHON) bench/bench_gpu.py $(ARGS)

clean:
	rm -rf runs exports bench/results
