/*
 * crc32c.h — CRC-32C (Castagnoli), as MS-VHDX uses it: initial value
 * 0xFFFFFFFF, reflected, final XOR 0xFFFFFFFF. crc32c("123456789") is
 * 0xE3069283.
 */
#ifndef GPUP_CRC32C_H
#define GPUP_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32C of @len bytes at @buf. */
uint32_t crc32c(const void *buf, size_t len);

/* Continue a CRC: crc32c_update(crc32c(a, n), b, m) == crc32c(a||b, n+m). */
uint32_t crc32c_update(uint32_t crc, const void *buf, size_t len);

/* crc32c_update() with the portable table only, whatever the CPU offers
 * (tests compare it with the instruction path). */
uint32_t crc32c_update_table(uint32_t crc, const void *buf, size_t len);

#endif
