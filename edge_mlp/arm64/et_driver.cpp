// A C ABI over the ExecuTorch runtime of the executorch wheel, for the arm64 root (edge_mlp.arm64).
//
// Why this exists: the wheel's Python extension (executorch.extension.pybindings._C) links
// libtorch_python / libtorch_cpu / libc10 only to convert torch tensors, and PyPI's aarch64 torch
// of the pinned version is a CUDA build whose libraries need CUDA. The runtime itself
// (libexecutorch.so, the optimized kernels, the XNNPACK delegate, the threadpool) needs no torch,
// and the wheel ships its headers and a CMake package for exactly this use: a C++ program linking
// the runtime. This file is that program, as a shared library the in-root script loads with
// ctypes. It links the same libraries the Python extension links (runtime, optimized kernels,
// XNNPACK, threadpool; not the quantized kernels, which the extension does not link either) and
// loads a program the way `Runtime.load_program(...)` does, then the method asked for, as
// `program.load_method(name)` does (`forward`, or `forward_HxW` of a multi-size program:
// edge_mlp.converters.executorch._Program).
//
// Built on the host with Debian's g++-aarch64-linux-gnu (edge_mlp.arm64.root), against the
// aarch64 wheel's include/ and lib/, with the definitions its executorch-config.cmake asks for.

#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>
#include <executorch/runtime/backend/interface.h>
#include <executorch/runtime/platform/runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

using executorch::extension::Module;
using executorch::extension::make_tensor_ptr;
using executorch::runtime::EValue;
using executorch::runtime::Error;

namespace {
std::unique_ptr<Module> g_module;
std::string g_error;
std::vector<std::string> g_methods;          // the program's method names, sorted
std::vector<std::string> g_method_backends;  // backends of the method last loaded
std::vector<EValue> g_outputs;               // the last run's outputs (the method owns their memory)

int fail(const std::string& what, Error err) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%x", static_cast<uint32_t>(err));
  g_error = what + " (executorch error 0x" + buf + ")";
  return -1;
}

int need_module() {
  if (g_module) return 0;
  g_error = "called before etd_load";
  return -1;
}
}  // namespace

extern "C" {

const char* etd_error() { return g_error.c_str(); }

// Loads the program at `path` and lists its methods (no method is loaded yet).
int etd_load(const char* path) {
  executorch::runtime::runtime_init();
  g_module = std::make_unique<Module>(path, Module::LoadMode::File);
  Error err = g_module->load();
  if (err != Error::Ok) return fail(std::string("cannot load program ") + path, err);
  auto names = g_module->method_names();
  if (!names.ok()) return fail(std::string("cannot list the methods of ") + path, names.error());
  g_methods.assign(names->begin(), names->end());
  std::sort(g_methods.begin(), g_methods.end());
  return 0;
}

int etd_num_methods() { return static_cast<int>(g_methods.size()); }
const char* etd_method_name(int i) { return g_methods.at(i).c_str(); }

// Loads method `name` (delegates initialize here: XNNPACK builds its runtime) and records the
// backends it delegates to.
int etd_load_method(const char* name) {
  if (need_module() != 0) return -1;
  Error err = g_module->load_method(name);
  if (err != Error::Ok) return fail(std::string("cannot load method ") + name, err);
  auto meta = g_module->method_meta(name);
  if (!meta.ok()) return fail(std::string("no method_meta for ") + name, meta.error());
  g_method_backends.clear();
  for (size_t i = 0; i < meta->num_backends(); ++i) {
    auto backend = meta->get_backend_name(i);
    if (backend.ok()) g_method_backends.emplace_back(*backend);
  }
  return 0;
}

// Backends the method last loaded delegates to (e.g. "XnnpackBackend").
int etd_num_method_backends() { return static_cast<int>(g_method_backends.size()); }
const char* etd_method_backend(int i) { return g_method_backends.at(i).c_str(); }

// Backends registered in this process, and whether each says it is available on this CPU.
int etd_num_registered_backends() { return static_cast<int>(executorch::runtime::get_num_registered_backends()); }
const char* etd_registered_backend(int i) {
  auto name = executorch::runtime::get_backend_name(static_cast<size_t>(i));
  return name.ok() ? *name : "";
}
int etd_backend_available(const char* name) {
  auto* backend = executorch::runtime::get_backend_class(name);
  return backend != nullptr && backend->is_available() ? 1 : 0;
}

// Runs method `name` on one float32 tensor of `ndim` sizes. Returns the number of outputs (each a
// float32 tensor: read them with etd_output_*) or -1.
int etd_run(const char* name, const float* x, const int32_t* sizes, int ndim) {
  if (need_module() != 0) return -1;
  std::vector<executorch::aten::SizesType> shape(sizes, sizes + ndim);
  int64_t numel = 1;
  for (auto s : shape) numel *= s;
  std::vector<float> input(x, x + numel);  // the runtime may write into its input: keep the caller's
  auto tensor = make_tensor_ptr(shape, input.data(), executorch::aten::ScalarType::Float);
  g_outputs.clear();
  auto result = g_module->execute(name, std::vector<EValue>{*tensor});
  if (!result.ok()) return fail(std::string(name) + " failed", result.error());
  for (size_t i = 0; i < result->size(); ++i) {
    const EValue& value = (*result)[i];
    if (!value.isTensor() || value.toTensor().scalar_type() != executorch::aten::ScalarType::Float) {
      g_error = std::string(name) + "'s output " + std::to_string(i) + " is not a float32 tensor";
      g_outputs.clear();
      return -1;
    }
  }
  g_outputs = std::move(*result);
  return static_cast<int>(g_outputs.size());
}

// The last run's output `i`: its rank, its size along `d`, and its values copied into `out`
// (capacity `capacity` floats; returns the count copied, or -1 if it does not fit).
int etd_output_ndim(int i) { return static_cast<int>(g_outputs.at(i).toTensor().dim()); }
int64_t etd_output_size(int i, int d) { return g_outputs.at(i).toTensor().size(d); }
int64_t etd_output_copy(int i, float* out, int64_t capacity) {
  const auto& y = g_outputs.at(i).toTensor();
  if (y.numel() > capacity) {
    g_error = "output larger than the buffer given";
    return -1;
  }
  std::memcpy(out, y.const_data_ptr<float>(), y.numel() * sizeof(float));
  return y.numel();
}

}  // extern "C"
