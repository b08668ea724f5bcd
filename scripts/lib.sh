# Sourced by the reproduction scripts (from the repository root).
# The device a run uses unless DEVICE says otherwise: cuda when nvidia-smi sees a GPU, else cpu.
default_device() { if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then echo cuda; else echo cpu; fi; }
