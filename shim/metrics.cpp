#include "shim/metrics.h"

#include "github.com/containerd/cgroups/v2/stats/metrics.pb.h"

namespace husk::shim {

google::protobuf::Any metrics_from(const agent::v1::ContainerStats& stats) {
  io::containerd::cgroups::v2::Metrics m;
  m.mutable_pids()->set_current(stats.pids().current());
  m.mutable_pids()->set_limit(stats.pids().limit());
  auto* c = m.mutable_cpu();
  c->set_usage_usec(stats.cpu().usage_usec());
  c->set_user_usec(stats.cpu().user_usec());
  c->set_system_usec(stats.cpu().system_usec());
  c->set_nr_periods(stats.cpu().nr_periods());
  c->set_nr_throttled(stats.cpu().nr_throttled());
  c->set_throttled_usec(stats.cpu().throttled_usec());
  auto* mem = m.mutable_memory();
  const auto& sm = stats.memory();
  mem->set_anon(sm.anon());
  mem->set_file(sm.file());
  mem->set_kernel_stack(sm.kernel_stack());
  mem->set_slab(sm.slab());
  mem->set_sock(sm.sock());
  mem->set_shmem(sm.shmem());
  mem->set_file_mapped(sm.file_mapped());
  mem->set_file_dirty(sm.file_dirty());
  mem->set_file_writeback(sm.file_writeback());
  mem->set_anon_thp(sm.anon_thp());
  mem->set_inactive_anon(sm.inactive_anon());
  mem->set_active_anon(sm.active_anon());
  mem->set_inactive_file(sm.inactive_file());
  mem->set_active_file(sm.active_file());
  mem->set_unevictable(sm.unevictable());
  mem->set_slab_reclaimable(sm.slab_reclaimable());
  mem->set_slab_unreclaimable(sm.slab_unreclaimable());
  mem->set_pgfault(sm.pgfault());
  mem->set_pgmajfault(sm.pgmajfault());
  mem->set_usage(sm.usage());
  mem->set_usage_limit(sm.usage_limit());
  mem->set_swap_usage(sm.swap_usage());
  mem->set_swap_limit(sm.swap_limit());
  auto* me = m.mutable_memory_events();
  me->set_low(stats.memory_events().low());
  me->set_high(stats.memory_events().high());
  me->set_max(stats.memory_events().max());
  me->set_oom(stats.memory_events().oom());
  me->set_oom_kill(stats.memory_events().oom_kill());
  for (const auto& e : stats.io()) {
    auto* u = m.mutable_io()->add_usage();
    u->set_major(e.major());
    u->set_minor(e.minor());
    u->set_rbytes(e.rbytes());
    u->set_wbytes(e.wbytes());
    u->set_rios(e.rios());
    u->set_wios(e.wios());
  }
  google::protobuf::Any any;
  any.set_type_url("io.containerd.cgroups.v2.Metrics");
  any.set_value(m.SerializeAsString());
  return any;
}

}  // namespace husk::shim
