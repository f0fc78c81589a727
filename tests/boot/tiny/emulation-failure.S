/*
 * Jumps into MMIO nobody backs: KVM cannot fetch instructions there, on any
 * host, so KVM_RUN ends in an emulation failure (KVM_EXIT_INTERNAL_ERROR).
 */
#include "tiny.inc"
.globl _start
_start:
    PUTS msg
    mov $0xdff00000, %eax
    jmp *%eax
msg:
    .asciz "tiny guest: jumping into MMIO\n"
