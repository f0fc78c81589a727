/* Prints a line on COM1, then reports 0x10 through isa-debug-exit at 0xf4 (exit 33). */
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
2:  mov $0x10, %al
    out %al, $0xf4
3:  hlt
    jmp 3b
msg:
    .asciz "tiny guest: hello from PVH entry\n"
