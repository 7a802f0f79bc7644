// The interface of a device-memory collective backend (NCCL): what a Communicator calls for Views in
// memory the host cannot read. Needs neither Kokkos nor CUDA, so comm_core stays host-only; comm/nccl.cpp
// implements it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace skein::comm {

enum class Op;

// The element types a device backend reduces (NCCL's ncclDataType_t, minus half precision).
enum class DeviceType { i8, u8, i32, u32, i64, u64, f32, f64 };

template <class T>
constexpr DeviceType device_type() {
  using U = std::remove_cv_t<T>;
  static_assert(std::is_arithmetic_v<U> && !std::is_same_v<U, bool> && !std::is_same_v<U, long double>,
                "device collectives take integers, float or double");
  if constexpr (std::is_floating_point_v<U>) {
    return sizeof(U) == 4 ? DeviceType::f32 : DeviceType::f64;
  } else if constexpr (sizeof(U) == 1) {
    return std::is_signed_v<U> ? DeviceType::i8 : DeviceType::u8;
  } else if constexpr (sizeof(U) == 4) {
    return std::is_signed_v<U> ? DeviceType::i32 : DeviceType::u32;
  } else {
    static_assert(sizeof(U) == 8, "device collectives take 1, 4 or 8-byte integers");
    return std::is_signed_v<U> ? DeviceType::i64 : DeviceType::u64;
  }
}

// Collectives on device pointers over the same ranks, in the same order, as the Communicator that holds it.
// `stream` is the cudaStream_t of the Kokkos execution space instance (nullptr: the default stream). Each
// call returns when its result is in place (MPI's semantics, so callers cannot tell the backends apart);
// a failure throws an engine::InternalError naming the call, which the caller's agree() spreads to every
// rank like an MPI failure.
class DeviceCollectives {
 public:
  virtual ~DeviceCollectives() = default;
  virtual const char* name() const = 0;
  virtual int device() const = 0;  // the CUDA device this rank's communicator uses
  virtual void allreduce(void* data, std::size_t count, DeviceType type, Op op, void* stream) const = 0;
  virtual void bcast(void* data, std::size_t count, DeviceType type, int root, void* stream) const = 0;
  // `count` elements from every rank, concatenated in rank order into `receive` (size() * count elements).
  virtual void allgather(const void* send, void* receive, std::size_t count, DeviceType type,
                         void* stream) const = 0;
};

}  // namespace skein::comm
