#include "shim/templates.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <filesystem>
#include <fstream>

#include "common/log.h"
#include "shim/sandbox.h"

namespace husk::shim {
namespace {

Result<std::string> identity(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return make_error("template input %s: %s", path.c_str(), std::strerror(errno));
  return path + " size=" + std::to_string(st.st_size) + " mtime=" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec) + " inode=" + std::to_string(st.st_ino) + "\n";
}

Result<UniqueFd> open_read(int dir, const char* name) {
  UniqueFd fd(::openat(dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  struct stat st{};
  // Gone (a prune removed the template between our open of its directory and of the file):
  // not found, so the caller takes the lock and makes it again.
  if (!fd && errno == ENOENT) return make_error(ErrorCode::kNotFound, "template file %s: gone", name);
  if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
    return make_error("template file %s: %s", name, fd ? "not a regular file" : std::strerror(errno));
  return fd;
}

Status write_file(int dir, const char* name, const std::string& text) {
  UniqueFd fd(::openat(dir, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0400));
  if (!fd || ::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()) || ::fsync(fd.get()) != 0)
    return make_error("writing template %s: %s", name, std::strerror(errno));
  return {};
}

}  // namespace

std::string template_mac(unsigned nic) {
  char mac[18];
  std::snprintf(mac, sizeof mac, "06:00:00:00:00:%02x", (nic + 1) & 0xff);
  return mac;
}

Result<std::string> template_inputs(const Config& c, unsigned nics) {
  std::string s;
  for (const auto* p : {&c.vmm, &c.kernel, &c.initramfs}) {
    auto id = identity(*p);
    if (!id) return id.error();
    s += *id;
  }
  s += "vcpus=" + std::to_string(c.vcpus) + " memory_mib=" + std::to_string(c.memory_mib) + "\n";
  for (const auto& a : c.vmm_args) s += "vmm_arg=" + a + "\n";
  if (nics) s += "nics=" + std::to_string(nics) + "\n";
  return s;
}

std::string template_root(const Config& c) { return c.template_dir.empty() ? c.state_dir + "/templates" : c.template_dir; }

Result<std::vector<TemplateEntry>> list_templates(const Config& c) {
  std::vector<std::string> current;
  for (unsigned nics = 0; nics <= kMaxTemplateNics; ++nics) {
    auto inputs = template_inputs(c, nics);
    if (!inputs) return inputs.error();
    current.push_back(short_hash(*inputs));
  }
  std::vector<TemplateEntry> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(template_root(c), ec)) {
    if (!e.is_directory(ec) || e.is_symlink(ec)) continue;
    TemplateEntry t;
    t.key = e.path().filename().string();
    if (t.key.ends_with(".tmp")) {
      t.key.resize(t.key.size() - 4);
      t.kind = TemplateEntry::kPartial;
    } else {
      t.kind = std::find(current.begin(), current.end(), t.key) != current.end() ? TemplateEntry::kCurrent
                                                                               : TemplateEntry::kStale;
    }
    for (const auto& f : std::filesystem::directory_iterator(e.path(), ec)) {
      struct stat st{};
      if (::lstat(f.path().c_str(), &st) == 0) t.disk_bytes += static_cast<uint64_t>(st.st_blocks) * 512;
    }
    std::ifstream in(e.path() / "inputs");
    t.inputs.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    out.push_back(std::move(t));
  }
  if (ec && ec != std::errc::no_such_file_or_directory)
    return make_error("template directory %s: %s", template_root(c).c_str(), ec.message().c_str());
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.key < b.key; });
  return out;
}

Result<std::vector<std::string>> prune_templates(const Config& c) {
  auto list = list_templates(c);
  if (!list) return list.error();
  const std::string root = template_root(c);
  std::vector<std::string> removed;
  for (const auto& t : *list) {
    if (t.kind == TemplateEntry::kCurrent) continue;
    const std::string dir = root + "/" + t.key;
    // The creator holds the lock from before <key>.tmp exists until <key> is published.
    UniqueFd lock(::open((dir + ".lock").c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!lock) return make_error("locking template %s: %s", dir.c_str(), std::strerror(errno));
    if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
      LOG_INFO("template %s is being made: left alone", dir.c_str());
      continue;
    }
    std::error_code ec;
    std::filesystem::remove_all(t.kind == TemplateEntry::kPartial ? dir + ".tmp" : dir, ec);
    if (ec) return make_error("removing template %s: %s", dir.c_str(), ec.message().c_str());
    // The lock file stays (a few bytes): removing it would let two creators lock two files.
    removed.push_back(t.key + (t.kind == TemplateEntry::kPartial ? ".tmp" : ""));
  }
  return removed;
}

Result<TemplateFiles> get_template(const Config& c, const std::function<Status(int, int)>& create, unsigned nics) {
  if (nics > kMaxTemplateNics) return make_error(ErrorCode::kInvalidArgument, "templates have at most %u NICs", kMaxTemplateNics);
  auto inputs = template_inputs(c, nics);
  if (!inputs) return inputs.error();
  const std::string root = template_root(c);
  const std::string key = short_hash(*inputs);
  std::error_code ec;
  std::filesystem::create_directories(root, ec);
  if (ec) return make_error("template directory %s: %s", root.c_str(), ec.message().c_str());
  ::chmod(root.c_str(), 0700);
  const std::string dir = root + "/" + key;

  auto open_existing = [&]() -> Result<TemplateFiles> {
    UniqueFd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!d) return make_error(ErrorCode::kNotFound, "no template");
    TemplateFiles t;
    auto state = open_read(d.get(), "state");
    if (!state) return state.error();
    auto mem = open_read(d.get(), "mem");
    if (!mem) return mem.error();
    t.state = std::move(state.value());
    t.mem = std::move(mem.value());
    return t;
  };
  if (auto t = open_existing(); t || t.error().code != ErrorCode::kNotFound) return t;

  UniqueFd lock(::open((dir + ".lock").c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!lock || ::flock(lock.get(), LOCK_EX) != 0)
    return make_error("locking template %s: %s", dir.c_str(), std::strerror(errno));
  // Another shim may have made it while we waited.
  if (auto t = open_existing(); t || t.error().code != ErrorCode::kNotFound) return t;

  const std::string tmp = dir + ".tmp";
  std::filesystem::remove_all(tmp, ec);  // a creator that died half way
  if (::mkdir(tmp.c_str(), 0700) != 0) return make_error("mkdir %s: %s", tmp.c_str(), std::strerror(errno));
  UniqueFd td(::open(tmp.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  UniqueFd state(::openat(td.get(), "state", O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  UniqueFd mem(::openat(td.get(), "mem", O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!td || !state || !mem) return make_error("creating template files in %s: %s", tmp.c_str(), std::strerror(errno));
  LOG_INFO("creating template %s", dir.c_str());
  if (auto s = create(state.get(), mem.get()); !s) {
    std::filesystem::remove_all(tmp, ec);
    return s.error().wrap("creating the template snapshot: ");
  }
  HUSK_TRY(write_file(td.get(), "inputs", *inputs));
  // Read-only from now on: every sandbox maps this memory file.
  ::fchmod(state.get(), 0400);
  ::fchmod(mem.get(), 0400);
  if (::fsync(state.get()) != 0 || ::fsync(mem.get()) != 0 || ::fsync(td.get()) != 0)
    return make_error("syncing template %s: %s", tmp.c_str(), std::strerror(errno));
  if (::rename(tmp.c_str(), dir.c_str()) != 0) return make_error("publishing template %s: %s", dir.c_str(), std::strerror(errno));
  auto t = open_existing();
  if (t) t->created = true;
  return t;
}

}  // namespace husk::shim
