// ttrpc framing: a 10-byte header (data length and stream id, both big-endian uint32, then the
// message type and flags) before each message. containerd's ttrpc 1.1 limits data to 4 MiB.
#pragma once

#include "common/result.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace husk::ttrpc {

inline constexpr size_t kHeaderSize = 10;
inline constexpr uint32_t kMaxData = 4 << 20;
inline constexpr uint8_t kTypeRequest = 1;
inline constexpr uint8_t kTypeResponse = 2;

struct FrameHeader {
  uint32_t length = 0;
  uint32_t stream_id = 0;
  uint8_t type = 0;
  uint8_t flags = 0;
};

std::array<uint8_t, kHeaderSize> encode_header(const FrameHeader& h);
FrameHeader decode_header(const uint8_t* in);
// Header + data, ready to write.
std::string frame(uint32_t stream_id, uint8_t type, const std::string& data);

// Status codes on the wire are google.rpc.Code: 0 for success, else husk's ErrorCode numbers.
inline constexpr int32_t kOk = 0;
constexpr int32_t wire(ErrorCode c) { return static_cast<int32_t>(c); }

}  // namespace husk::ttrpc
