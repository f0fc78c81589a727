/*
 * Counts its boots in CMOS NVRAM byte 0x7e (it survives a reset, RAM does not),
 * prints "boot N", and resets through the 8042 until the second boot, which
 * reports 0x10 through isa-debug-exit (exit 33).
 */
#include "tiny.inc"
.globl _start
_start:
    mov $0x7e, %al
    out %al, $0x70
    in $0x71, %al
    inc %al
    mov %al, %bl
    mov $0x7e, %al
    out %al, $0x70
    mov %bl, %al
    out %al, $0x71

    PUTS msg
    mov %bl, %al
    add $'0', %al
    out %al, %dx
    mov $'\n', %al
    out %al, %dx

    cmp $2, %bl
    jae 4f
    mov $0xfe, %al      /* pulse the CPU reset line */
    out %al, $0x64
3:  hlt
    jmp 3b
4:  mov $0x10, %al
    out %al, $0xf4
    jmp 3b
msg:
    .asciz "tiny guest: boot "
