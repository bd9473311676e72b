#include "shim/ttrpc/frame.h"

namespace husk::ttrpc {

std::array<uint8_t, kHeaderSize> encode_header(const FrameHeader& h) {
  return {static_cast<uint8_t>(h.length >> 24), static_cast<uint8_t>(h.length >> 16),
          static_cast<uint8_t>(h.length >> 8),  static_cast<uint8_t>(h.length),
          static_cast<uint8_t>(h.stream_id >> 24), static_cast<uint8_t>(h.stream_id >> 16),
          static_cast<uint8_t>(h.stream_id >> 8),  static_cast<uint8_t>(h.stream_id),
          h.type, h.flags};
}

FrameHeader decode_header(const uint8_t* in) {
  FrameHeader h;
  h.length = uint32_t(in[0]) << 24 | uint32_t(in[1]) << 16 | uint32_t(in[2]) << 8 | in[3];
  h.stream_id = uint32_t(in[4]) << 24 | uint32_t(in[5]) << 16 | uint32_t(in[6]) << 8 | in[7];
  h.type = in[8];
  h.flags = in[9];
  return h;
}

std::string frame(uint32_t stream_id, uint8_t type, const std::string& data) {
  auto hdr = encode_header({static_cast<uint32_t>(data.size()), stream_id, type, 0});
  std::string out(reinterpret_cast<const char*>(hdr.data()), hdr.size());
  out += data;
  return out;
}

}  // namespace husk::ttrpc
