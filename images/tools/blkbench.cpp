// husk-blkbench: storage figures from inside a guest, printed as KEY=value lines.
//   husk-blkbench DEVICE MiB RANDOM_READS   block device throughput with O_DIRECT (the guest's
//                                           page cache out of the picture)
//   husk-blkbench --files DIR               open, read and close every file in DIR (a shared
//                                           file system's small-file rate)
#include <dirent.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {
double now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}
struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
}  // namespace

int files(const char* dir) {
  DIR* d = opendir(dir);
  if (!d) return std::perror(dir), 1;
  std::vector<std::string> names;
  while (dirent* e = readdir(d))
    if (e->d_name[0] != '.') names.push_back(std::string(dir) + "/" + e->d_name);
  closedir(d);
  char buf[65536];
  size_t bytes = 0;
  double t = now();
  for (const auto& n : names) {
    int fd = open(n.c_str(), O_RDONLY);
    if (fd < 0) return std::perror(n.c_str()), 1;
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0) bytes += static_cast<size_t>(r);
    close(fd);
  }
  double dt = now() - t;
  std::printf("FS_FILES=%zu\nFS_FILES_PER_SEC=%.0f\nFS_READ_MBPS=%.2f\n", names.size(),
              static_cast<double>(names.size()) / dt, static_cast<double>(bytes) / dt / 1048576.0);
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "--files") == 0) return files(argv[2]);
  if (argc != 4) {
    std::fprintf(stderr, "usage: husk-blkbench DEVICE MiB RANDOM_READS\n");
    return 2;
  }
  const long mib = std::atol(argv[2]), reads = std::atol(argv[3]);
  int fd = open(argv[1], O_RDWR | O_DIRECT);
  if (fd < 0 || mib <= 0 || reads <= 0) {
    std::perror(argv[1]);
    return 1;
  }
  constexpr size_t kChunk = 1 << 20;
  void* raw = nullptr;
  if (posix_memalign(&raw, 4096, kChunk) != 0) return 1;
  std::unique_ptr<void, FreeDeleter> buf(raw);
  std::memset(buf.get(), 0x5a, kChunk);

  double t = now();
  for (long i = 0; i < mib; ++i)
    if (pwrite(fd, buf.get(), kChunk, static_cast<off_t>(i) * static_cast<off_t>(kChunk)) != static_cast<ssize_t>(kChunk)) return 1;
  if (fdatasync(fd) != 0) return 1;
  std::printf("BLK_SEQ_WRITE_MBPS=%.1f\n", static_cast<double>(mib) / (now() - t));

  t = now();
  for (long i = 0; i < mib; ++i)
    if (pread(fd, buf.get(), kChunk, static_cast<off_t>(i) * static_cast<off_t>(kChunk)) != static_cast<ssize_t>(kChunk)) return 1;
  std::printf("BLK_SEQ_READ_MBPS=%.1f\n", static_cast<double>(mib) / (now() - t));

  // 4 KiB reads at pseudo-random 4 KiB-aligned offsets (fixed seed: both VMMs see the same).
  unsigned long long x = 88172645463325252ull;
  const long blocks = mib * 256;
  t = now();
  for (long i = 0; i < reads; ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    off_t off = static_cast<off_t>(x % static_cast<unsigned long long>(blocks)) * 4096;
    if (pread(fd, buf.get(), 4096, off) != 4096) return 1;
  }
  std::printf("BLK_RAND_READ_IOPS=%.0f\n", static_cast<double>(reads) / (now() - t));
  close(fd);
  return 0;
}
