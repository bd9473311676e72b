// Template snapshots for sandboxes that start from a snapshot ("start": "template"): a booted,
// agent-ready guest, paused before anything of a tenant reached it, saved once per set of
// inputs and restored by every sandbox that has the same ones. Restored copies map its memory
// MAP_PRIVATE, so they share every page they do not write.
//
// <template_dir>/<key>/{state,mem,inputs}: `key` hashes everything that shapes the guest (the
// husk-vmm, kernel and initramfs files by identity — path, size, mtime, inode — vCPUs, memory,
// extra VMM arguments), so changing any of them makes a new template; `inputs` spells them out.
// Creation is atomic: one shim creates under <key>.lock (flock), into a temporary directory
// renamed into place only when complete; a racing shim waits on the lock and finds it made.
#pragma once

#include <functional>
#include <string>

#include "common/result.h"
#include "common/unique_fd.h"
#include "shim/config.h"

namespace husk::shim {

struct TemplateFiles {
  UniqueFd state, mem;  // read-only, handed to husk-vmm --restore fd=N,fd=M
  bool created = false;  // this call made it
};

// A template's VM has `nics` NICs with no host side (husk-vmm --net null) and these MACs; a pod's
// sandbox restored from it gets the pod's taps, and the agent gives the NICs the pod's MACs.
constexpr unsigned kMaxTemplateNics = 4;
std::string template_mac(unsigned nic);

// What identifies a template for `c` with `nics` NICs (human-readable; hashed for the directory
// name).
Result<std::string> template_inputs(const Config& c, unsigned nics = 0);
// Where c's templates live: template_dir, default <state_dir>/templates.
std::string template_root(const Config& c);

// What is under template_root(c): the templates c would restore ("current", one per NIC count), templates made for
// other inputs ("stale": an upgraded kernel, another memory size), half-made ones a creator left
// when it died ("partial", <key>.tmp).
struct TemplateEntry {
  std::string key;
  enum Kind { kCurrent, kStale, kPartial } kind = kStale;
  uint64_t disk_bytes = 0;  // allocated, not apparent: memory files are sparse
  std::string inputs;       // its inputs file
};
Result<std::vector<TemplateEntry>> list_templates(const Config& c);
// Removes every stale and partial template, each under its creation lock (one being made right
// now is skipped). Sandboxes restored from a removed template keep running: they hold its files.
// Returns the keys removed.
Result<std::vector<std::string>> prune_templates(const Config& c);

// The template for `c` with `nics` NICs, made first by `create(state_fd, mem_fd)` if there is
// none: it must leave a complete snapshot in the two files (open for writing) or fail.
Result<TemplateFiles> get_template(const Config& c, const std::function<Status(int state_fd, int mem_fd)>& create,
                                   unsigned nics = 0);

}  // namespace husk::shim
