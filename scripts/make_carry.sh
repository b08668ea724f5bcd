#!/usr/bin/env bash
# Packs what a device call needs into carry/bundle.tar.xz (git-ignored): the sm_90 binary and tests,
# the non-CUDA shared libraries they link, the prepared shards (data/ts) and the test data.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${DATA:-../shared/data}
make -j2 maskmix build/maskmix_tests >/dev/null
[ -f data/ts/manifest.json ] || make demo
stage=$(mktemp -d)
mkdir -p "$stage/bin" "$stage/lib" "$stage/data" "$stage/shared/tinystories" "$stage/shared/tokenizers"
cp maskmix build/maskmix_tests "$stage/bin/"
for lib in $(ldd maskmix | awk '/=>/ {print $3}' | grep -v -E 'cuda|libc\.so|libm\.so|libstdc|libgcc_s|libpthread|libdl|librt'); do cp -L "$lib" "$stage/lib/"; done
cp -r data/ts "$stage/data/"
cp "$data/tinystories/valid.txt" "$stage/shared/tinystories/"
cp "$data/tokenizers/tok4096.model" "$stage/shared/tokenizers/"
cp "$data/tinystories/train.txt" "$stage/shared/tinystories/"
cp -r "$data/retrieval" "$stage/shared/"
mkdir -p carry
tar cJf carry/bundle.tar.xz -C "$stage" .
rm -rf "$stage"
ls -la carry/bundle.tar.xz
