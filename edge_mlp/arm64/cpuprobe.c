/* What an aarch64 program sees of the CPU that QEMU emulates (edge_mlp.arm64): the MIDR_EL1 the
 * kernel would print in /proc/cpuinfo (QEMU user mode lets EL0 read it, as Linux's cpuid emulation
 * does) and the AT_HWCAP / AT_HWCAP2 bits (the Features line). Static, so that it runs under
 * qemu-aarch64-static on the host without the root: one line, "midr=0x... hwcap=0x... hwcap2=0x...".
 */
#include <stdint.h>
#include <stdio.h>
#include <sys/auxv.h>

int main(void) {
  uint64_t midr;
  __asm__ volatile("mrs %0, midr_el1" : "=r"(midr));
  printf("midr=0x%llx hwcap=0x%llx hwcap2=0x%llx\n", (unsigned long long)midr,
         (unsigned long long)getauxval(AT_HWCAP), (unsigned long long)getauxval(AT_HWCAP2));
  return 0;
}
