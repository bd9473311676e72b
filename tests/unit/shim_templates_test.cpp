// Template bookkeeping (shim/templates.h) without a VM: the creator is a function that writes
// the two files. Made once per set of inputs, atomically (racing creators make one; a failed one
// leaves nothing), read-only, and listed/pruned by `husk template`.
#include "shim/templates.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

namespace husk::shim {
namespace {

namespace fs = std::filesystem;

struct TemplatesTest : ::testing::Test {
  fs::path dir = fs::temp_directory_path() / ("husk-tmpl-" + std::to_string(::getpid()));
  Config c;
  std::atomic<int> made{0};

  void SetUp() override {
    fs::remove_all(dir);
    fs::create_directories(dir);
    for (const char* f : {"vmm", "vmlinux", "initrd"}) std::ofstream(dir / f) << f;
    c.vmm = (dir / "vmm").string();
    c.kernel = (dir / "vmlinux").string();
    c.initramfs = (dir / "initrd").string();
    c.state_dir = (dir / "run").string();
    c.vcpus = 1;
    c.memory_mib = 256;
  }
  void TearDown() override { fs::remove_all(dir); }

  std::function<Status(int, int)> creator(const char* mark = "state") {
    return [this, mark](int state, int mem) -> Status {
      ++made;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // long enough for a racer to arrive
      if (::write(state, mark, std::strlen(mark)) < 0 || ::ftruncate(mem, 1 << 20) != 0) return make_error("write");
      return {};
    };
  }
  static std::string read_fd(int fd) {
    char b[64] = {};
    ssize_t n = ::pread(fd, b, sizeof b - 1, 0);
    return n > 0 ? std::string(b, static_cast<size_t>(n)) : "";
  }
};

TEST_F(TemplatesTest, MadeOnceThenFoundReadOnly) {
  auto a = get_template(c, creator());
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_TRUE(a->created);
  EXPECT_EQ(read_fd(a->state.get()), "state");
  auto b = get_template(c, creator());
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(b->created);
  EXPECT_EQ(made, 1);
  // The files are read-only and opened read-only: a sandbox cannot write the template.
  EXPECT_EQ(::fcntl(b->mem.get(), F_GETFL) & O_ACCMODE, O_RDONLY);
  auto list = list_templates(c);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  struct stat st{};
  ASSERT_EQ(::stat((template_root(c) + "/" + (*list)[0].key + "/mem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0400u);
  EXPECT_NE((*list)[0].inputs.find("memory_mib=256"), std::string::npos) << (*list)[0].inputs;
}

TEST_F(TemplatesTest, APodsTemplateWithNicsIsAnotherOneAndBothAreCurrent) {
  ASSERT_TRUE(get_template(c, creator()).ok());
  auto pod = get_template(c, creator(), 1);
  ASSERT_TRUE(pod.ok());
  EXPECT_TRUE(pod->created);
  EXPECT_EQ(made, 2);
  auto list = list_templates(c);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  for (const auto& t : *list) EXPECT_EQ(t.kind, TemplateEntry::kCurrent) << t.key;
  EXPECT_FALSE(get_template(c, creator(), kMaxTemplateNics + 1).ok());
  EXPECT_EQ(template_mac(0), "06:00:00:00:00:01");
}

TEST_F(TemplatesTest, RacingCreatorsMakeOne) {
  std::vector<std::thread> ts;
  std::atomic<int> created{0}, ok{0};
  for (int i = 0; i < 4; ++i)
    ts.emplace_back([&] {
      auto t = get_template(c, creator());
      if (t.ok()) ++ok, created += t->created ? 1 : 0;
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok, 4);
  EXPECT_EQ(created, 1);
  EXPECT_EQ(made, 1);
}

TEST_F(TemplatesTest, AFailedCreatorLeavesNothingAndTheNextOneMakesIt) {
  auto bad = get_template(c, [](int, int) -> Status { return make_error("the VM died"); });
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("the VM died"), std::string::npos);
  auto list = list_templates(c);
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->empty());
  auto good = get_template(c, creator());
  ASSERT_TRUE(good.ok());
  EXPECT_TRUE(good->created);
}

TEST_F(TemplatesTest, AChangedInputMakesANewTemplateAndPruneRemovesTheOldOnes) {
  ASSERT_TRUE(get_template(c, creator("old")).ok());
  // A new kernel (another size and mtime): the old template is stale, a new one is made.
  std::ofstream(c.kernel) << "a newer kernel";
  auto fresh = get_template(c, creator("new"));
  ASSERT_TRUE(fresh.ok());
  EXPECT_TRUE(fresh->created);
  EXPECT_EQ(read_fd(fresh->state.get()), "new");
  // And a creator that died half way left <key>.tmp.
  fs::create_directories(template_root(c) + "/0123456789abcdef.tmp");
  auto list = list_templates(c);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 3u);
  int current = 0, stale = 0, partial = 0;
  for (const auto& t : *list) {
    current += t.kind == TemplateEntry::kCurrent;
    stale += t.kind == TemplateEntry::kStale;
    partial += t.kind == TemplateEntry::kPartial;
    if (t.kind != TemplateEntry::kPartial) {
      EXPECT_GT(t.disk_bytes, 0u);
    }
  }
  EXPECT_EQ(current, 1);
  EXPECT_EQ(stale, 1);
  EXPECT_EQ(partial, 1);
  // A sandbox restored from the stale template keeps its files after the prune.
  auto removed = prune_templates(c);
  ASSERT_TRUE(removed.ok()) << removed.error().message;
  EXPECT_EQ(removed->size(), 2u);
  list = list_templates(c);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].kind, TemplateEntry::kCurrent);
  EXPECT_EQ(read_fd(fresh->state.get()), "new");
  auto again = get_template(c, creator());
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->created);
}

TEST_F(TemplatesTest, PruneLeavesATemplateThatIsBeingMade) {
  ASSERT_TRUE(get_template(c, creator()).ok());
  c.memory_mib = 512;  // now the 256 MiB template is stale...
  auto list = list_templates(c);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].kind, TemplateEntry::kStale);
  // ...but its creation lock is held (as by a shim with the old config making it again).
  const std::string lock_path = template_root(c) + "/" + (*list)[0].key + ".lock";
  int lock = ::open(lock_path.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(lock, 0);
  ASSERT_EQ(::flock(lock, LOCK_EX), 0);
  auto removed = prune_templates(c);
  ASSERT_TRUE(removed.ok());
  EXPECT_TRUE(removed->empty());
  ::close(lock);
  removed = prune_templates(c);
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(removed->size(), 1u);
}

}  // namespace
}  // namespace husk::shim
