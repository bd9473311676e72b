#include "shim/vmm_api.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <nlohmann/json.hpp>

namespace husk::shim {

namespace http = boost::beast::http;
using boost::asio::local::stream_protocol;

Status vmm_api_call(const std::string& path, const std::string& method, const std::string& target,
                    const std::string& json_body, unsigned timeout_ms) {
  boost::asio::io_context io;
  stream_protocol::socket sock(io);
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, "localhost");
  req.set(http::field::content_type, "application/json");
  req.body() = json_body;
  req.prepare_payload();
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024);
  boost::beast::flat_buffer buf;
  boost::system::error_code result = boost::asio::error::timed_out;
  // Asynchronous, so the whole exchange is bounded by one deadline.
  sock.async_connect(stream_protocol::endpoint(path), [&](boost::system::error_code ec) {
    if (ec) {
      result = ec;
      return;
    }
    http::async_write(sock, req, [&](boost::system::error_code wec, size_t) {
      if (wec) {
        result = wec;
        return;
      }
      http::async_read(sock, buf, parser, [&](boost::system::error_code rec, size_t) { result = rec; });
    });
  });
  io.run_for(std::chrono::milliseconds(timeout_ms));
  if (result)
    return make_error(ErrorCode::kUnavailable, "husk-vmm API %s %s: %s", method.c_str(), target.c_str(),
                      result == boost::asio::error::timed_out ? "no answer in time" : result.message().c_str());
  const auto& res = parser.get();
  unsigned code = res.result_int();
  if (code >= 200 && code < 300) return {};
  auto j = nlohmann::json::parse(res.body(), nullptr, false);
  std::string why = j.is_object() && j.contains("fault_message") && j["fault_message"].is_string()
                        ? j["fault_message"].get<std::string>()
                        : "HTTP " + std::to_string(code);
  return make_error(ErrorCode::kFailedPrecondition, "husk-vmm API %s %s: %s", method.c_str(), target.c_str(), why.c_str());
}

}  // namespace husk::shim
