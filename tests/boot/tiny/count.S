/*
 * Writes "abcdefghijklmnopqrstuvwxyz\n" to COM1 forever, one OUT per byte: a
 * VM saved and restored anywhere must continue the stream on the
 * destination with no byte repeated or lost.
 */
#include "tiny.inc"
.globl _start
_start:
    mov $0x3f8, %dx
1:  mov $'a', %al
2:  out %al, %dx
    inc %al
    cmp $'z' + 1, %al
    jne 2b
    mov $'\n', %al
    out %al, %dx
    jmp 1b
