/* Prints a line on COM1, then powers off through ACPI: PM1a_CNT (0x604) SLP_TYP S5 | SLP_EN. */
#include "tiny.inc"
.globl _start
_start:
    PUTS msg
    mov $0x604, %dx
    mov $0x3400, %ax /* SLP_TYP 5 << 10 | SLP_EN (bit 13) */
    out %ax, %dx
3:  hlt
    jmp 3b
msg:
    .asciz "tiny guest: powering off\n"
