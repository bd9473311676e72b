// Address-range dispatch for port I/O and MMIO exits. Filled while the VM is built, read-only
// once vCPUs run, so lookups need no lock; each device synchronizes itself.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "common/result.h"

namespace husk {

class BusDevice {
 public:
  virtual ~BusDevice() = default;
  // `offset` is relative to the device's base; `data` is 1-8 bytes. A read must fill `data`.
  virtual void read(uint64_t offset, std::span<uint8_t> data) = 0;
  virtual void write(uint64_t offset, std::span<const uint8_t> data) = 0;
};

class Bus {
 public:
  Status insert(uint64_t base, uint64_t len, std::shared_ptr<BusDevice> dev);
  // False when no device claims the address (the caller decides what an unclaimed access does).
  bool read(uint64_t addr, std::span<uint8_t> data) const;
  bool write(uint64_t addr, std::span<const uint8_t> data) const;

 private:
  struct Entry {
    uint64_t base, len;
    std::shared_ptr<BusDevice> dev;
  };
  const Entry* find(uint64_t addr, uint64_t len) const;
  std::vector<Entry> entries_;  // sorted by base, non-overlapping
};

}  // namespace husk
