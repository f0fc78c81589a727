/* Loads an empty IDT and faults: the CPU shuts down, which a PC turns into a reset. */
#include "tiny.inc"
.globl _start
_start:
    PUTS msg
    lidt idt_desc
    ud2
msg:
    .asciz "tiny guest: triple fault\n"
.align 8
idt_desc:
    .word 0
    .long 0
