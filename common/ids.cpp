#include "common/ids.h"

#include <cctype>
#include <string>

namespace husk {

namespace {
bool alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }
}  // namespace

bool valid_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxIdLength || !alnum(id.front()) || !alnum(id.back())) return false;
  for (size_t i = 0; i < id.size(); i++) {
    if (alnum(id[i])) continue;
    if ((id[i] != '.' && id[i] != '_' && id[i] != '-') || !alnum(id[i + 1])) return false;
  }
  return true;
}

Status check_id(std::string_view what, std::string_view id) {
  if (valid_id(id)) return {};
  std::string shown(id.substr(0, 80));
  return make_error(ErrorCode::kInvalidArgument,
                    "%.*s \"%s\" is not a valid identifier: 1-%zu alphanumerics joined by single '.', '_' or '-'",
                    static_cast<int>(what.size()), what.data(), shown.c_str(), kMaxIdLength);
}

}  // namespace husk
