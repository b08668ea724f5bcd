// Parameter table: layout, initialisation and the lower-triangular masks.
#include "model/params.h"

namespace mm {

size_t ParamTable::add(std::string name, std::vector<int64_t> shape, InitKind init, float scale, bool lower_triangular) {
  ParamInfo info;
  info.name = std::move(name);
  info.shape = std::move(shape);
  info.numel = 1;
  for (int64_t d : info.shape) info.numel *= static_cast<size_t>(d);
  info.offset = total_;
  info.init = init;
  info.scale = scale;
  info.lower_triangular = lower_triangular;
  total_ += info.numel;
  entries_.push_back(std::move(info));
  return entries_.size() - 1;
}

template <class T>
void ParamTable::initialise(T* host, Rng& rng) const {
  for (const ParamInfo& p : entries_) {
    T* x = host + p.offset;
    for (size_t i = 0; i < p.numel; ++i) {
      switch (p.init) {
        case InitKind::Zeros: x[i] = 0; break;
        case InitKind::Ones: x[i] = 1; break;
        case InitKind::Normal: x[i] = static_cast<T>(rng.normal() * p.scale); break;
        case InitKind::Uniform: x[i] = static_cast<T>((2 * rng.uniform() - 1) * p.scale); break;
      }
    }
  }
  apply_masks(host);
}

template <class T>
void ParamTable::apply_masks(T* host) const {
  for (const ParamInfo& p : entries_) {
    if (!p.lower_triangular) continue;
    const size_t To = p.shape[p.shape.size() - 2], Ti = p.shape.back();
    for (size_t m = 0; m < p.numel / (To * Ti); ++m)
      for (size_t i = 0; i < To; ++i)
        for (size_t j = i + 1; j < Ti; ++j) host[p.offset + m * To * Ti + i * Ti + j] = 0;
  }
}

template void ParamTable::initialise<float>(float*, Rng&) const;
template void ParamTable::initialise<double>(double*, Rng&) const;
template void ParamTable::apply_masks<float>(float*) const;
template void ParamTable::apply_masks<double>(double*) const;

}  // namespace mm
