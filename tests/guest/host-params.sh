#!/bin/sh
# Prints the extra kernel command-line parameters a guest needs on a PVM host
# (/dev/kvm served by kvm_pvm, see README.md), and nothing on any other host.
# PVM's ring-0 emulator lacks XSAVE, POPCNT, CMPXCHG16B and more, and CPUID
# cannot hide them there, so the guest kernel is told not to use them.
# nopvspin: PV spinlock kicks are VMCALLs, which do not return there.
if [ -d /sys/module/kvm_pvm ]; then
    echo "nopvspin noxsave clearcpuid=cx16,xsave,avx,avx2,avx512f,popcnt,rdrand,rdseed,fsgsbase,smap,smep,pcid,invpcid,rdpid,movbe,bmi1,bmi2,clflushopt,clwb,umip,rdtscp,erms,fsrm,la57,pku,ospke,sha_ni,aes,pclmulqdq,avx512bw,avx512vl,avx512dq,avx512cd"
fi
