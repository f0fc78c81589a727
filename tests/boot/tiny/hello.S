/* Prints a line on COM1, then reports 0x10 through isa-debug-exit at 0xf4 (exit 33). */
#include "tiny.inc"
.globl _start
_start:
    PUTS msg
    mov $0x10, %al
    out %al, $0xf4
3:  hlt
    jmp 3b
msg:
    .asciz "tiny guest: hello from PVH entry\n"
