/* Loads an empty IDT and faults: the CPU shuts down, which a PC turns into a reset. */
#include "pvh-note.inc"
.globl _start
_start:
    mov $msg, %esi
    mov $0x3f8, %dx
1:  lodsb
    test %al, %al
    jz 2f
    out %al, %dx
    jmp 1b
2:  lidt idt_desc
    ud2
msg:
    .asciz "tiny guest: triple fault\n"
.align 8
idt_desc:
    .word 0
    .long 0
