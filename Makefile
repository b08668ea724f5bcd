# maskmix build. `make` builds ./maskmix; `make test` runs the Catch2 suite (GPU tests skip without a GPU).
# The CUDA sources are compiled whenever nvcc exists (for sm_90 plus the local GPU's arch), even with no GPU.

MAKEFLAGS += -j$(shell nproc)
CXX      ?= g++
CUDA_HOME ?= /usr/local/cuda
NVCC     := $(CUDA_HOME)/bin/nvcc
DATA     ?= ../shared/data
BUILD    := build
PYTHON   ?= /usr/bin/python3

COMMIT   := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
CXXFLAGS ?= -O3 -march=x86-64-v3
CXXFLAGS += -std=c++20 -fopenmp -Wall -Wextra -Wno-unused-parameter -Wno-restrict -Isrc -Icuda -DFMT_HEADER_ONLY -MMD -MP
LDLIBS   := -lsentencepiece -lsentencepiece_train -lopenblas -lpthread -ldl -lrt

HAVE_NVCC := $(shell test -x $(NVCC) && echo yes)
GPU_CC    := $(shell nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d '. ')
ifeq ($(HAVE_NVCC),yes)
  ARCHS := 90 $(filter-out 90,$(GPU_CC))
  NVCCFLAGS = -O3 -std=c++20 -Isrc -Icuda -Xcompiler -fopenmp $(foreach a,$(ARCHS),-gencode arch=compute_$(a),code=sm_$(a)) -MMD -MP
  CXXFLAGS += -DMASKMIX_CUDA -I$(CUDA_HOME)/include
  LDLIBS   += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lcudart_static
  CUDA_SRC := $(wildcard cuda/*.cu)
endif

$(info maskmix: compiler $(shell $(CXX) -dumpfullversion 2>/dev/null) ($(CXX)))
$(info maskmix: nvcc $(if $(HAVE_NVCC),$(shell $(NVCC) --version | grep -o 'release [0-9.]*'),not found: CPU-only build))
$(info maskmix: GPU $(if $(GPU_CC),compute capability $(GPU_CC),none detected; building for sm_90))
$(info maskmix: NCCL $(if $(wildcard $(CUDA_HOME)/include/nccl.h /usr/include/nccl.h),found,not found (multi-GPU off)))

CORE_SRC := $(wildcard src/core/*.cpp src/ops/*.cpp src/model/*.cpp src/cmd/*.cpp) $(if $(HAVE_NVCC),$(wildcard cuda/*.cpp))
CORE_OBJ := $(CORE_SRC:%.cpp=$(BUILD)/%.o) $(CUDA_SRC:%.cu=$(BUILD)/%.o) $(BUILD)/version.o
TEST_SRC := $(wildcard tests/*.cpp)
TEST_OBJ := $(TEST_SRC:%.cpp=$(BUILD)/%.o)

.PHONY: all test test-gpu bench deps demo clean FORCE
all: maskmix

maskmix: $(BUILD)/src/main.o $(CORE_OBJ)
	$(CXX) $(CXXFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/maskmix_tests: $(TEST_OBJ) $(CORE_OBJ)
	$(CXX) $(CXXFLAGS) -o $@ $^ $(LDLIBS)

# The commit id every .meta records: regenerated on each make, rewritten only when it changes.
$(BUILD)/version.cpp: FORCE
	@mkdir -p $(BUILD)
	@echo 'namespace mm { const char* build_commit() { return "$(COMMIT)"; } }' > $@.new
	@cmp -s $@.new $@ || mv $@.new $@; rm -f $@.new
FORCE:

$(BUILD)/version.o: $(BUILD)/version.cpp
	$(CXX) $(CXXFLAGS) -c $< -o $@

$(BUILD)/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

$(BUILD)/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

# wgmma and TMA exist only in the architecture-specific Hopper target (sm_90a runs on every sm_90 GPU)
$(BUILD)/cuda/gemm_gelu.o: ARCHS := 90a $(filter-out 90,$(GPU_CC))

# Every test; GPU tests skip themselves when no GPU is present.
test: maskmix $(BUILD)/maskmix_tests
	MASKMIX_DATA=$(abspath $(DATA)) MASKMIX_PYTHON=$(PYTHON) MASKMIX_BIN=$(abspath maskmix) $(BUILD)/maskmix_tests

# GPU machine: the [gpu] tests, which fail (not skip) when no GPU is found.
test-gpu: maskmix $(BUILD)/maskmix_tests
	MASKMIX_REQUIRE_GPU=1 MASKMIX_DATA=$(abspath $(DATA)) $(BUILD)/maskmix_tests "[gpu]"

bench: maskmix
	scripts/bench_cpu.sh

# The README's main job: every reproduction stage on the shipped data (DATA= to point elsewhere). Without a
# GPU it runs the --quick pipeline (tiny models, a few minutes on 2 cores) into results/quick/.
demo: maskmix
	DATA=$(abspath $(DATA)) scripts/reproduce_all.sh $(if $(GPU_CC),,--quick)

deps:
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq --no-install-recommends \
	  g++ make git libcxxopts-dev libfmt-dev catch2 libsentencepiece-dev sentencepiece libopenblas-dev \
	  gnuplot-nox python3 python3-numpy python3-torch

clean:
	rm -rf $(BUILD) maskmix

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
