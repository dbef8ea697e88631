/*
 * tfnode_iot.h - C ABI of tfnode's IoT attestation core, for gateway firmware.
 *
 * Library: libtfnode_iot_ffi.so / libtfnode_iot_ffi.a, built from core_rs/iot_ffi:
 *     cargo build --release -p tfnode-iot-ffi     # -> target/release/
 * Linking the static library also needs: -lpthread -ldl -lm (the Rust runtime).
 *
 * Formats (readings, batches, digests) are in docs/iot.md; the bytes produced here are
 * exactly those the node decodes and verifies.
 *
 * Conventions:
 *  - Functions return TFIOT_OK (0) or a negative TFIOT_ERR_* code. After a failure,
 *    tfiot_last_error() gives a message for the calling thread (the last error is per
 *    thread; a successful call clears it).
 *  - Pointer arguments must not be NULL, except an input pointer whose length is 0.
 *  - Output buffers come with a capacity; if it is too small the function returns
 *    TFIOT_ERR_BUFFER and stores the size needed in *out_len.
 *  - Nothing panics or unwinds across this boundary; an internal bug is TFIOT_ERR_INTERNAL.
 *  - Every function is thread-safe except that one batch handle must be used by one
 *    thread at a time.
 *  - SM2 signatures are (r || s), 64 bytes, with the default user id "1234567812345678",
 *    using hedged random nonces: signing the same input twice gives different bytes.
 */
#ifndef TFNODE_IOT_H
#define TFNODE_IOT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Return codes. */
#define TFIOT_OK            0
#define TFIOT_ERR_NULL     -1 /* a required pointer was NULL */
#define TFIOT_ERR_KEY      -2 /* secret key outside [1, n-2] */
#define TFIOT_ERR_INVALID  -3 /* input the formats reject: kind, payload, seq 0, flags,
                                 a reading that does not decode, an empty batch */
#define TFIOT_ERR_BUFFER   -4 /* output buffer too small; *out_len = size needed */
#define TFIOT_ERR_FULL     -5 /* batch full (4096 readings or 60000 bytes); reading not
                                 added: finish this batch and start another */
#define TFIOT_ERR_STATE    -6 /* batch already finished */
#define TFIOT_ERR_INTERNAL -7 /* a bug in the library (caught panic); see the message */

/* Sizes and caps (docs/iot.md). */
#define TFIOT_SECRET_KEY_LEN      32
#define TFIOT_PUBLIC_KEY_LEN      33  /* compressed SM2 point, 0x02/0x03 || x */
#define TFIOT_SIGNATURE_LEN       64
#define TFIOT_SM3_LEN             32
#define TFIOT_DEVICE_ID_LEN       16
#define TFIOT_MAX_READING_LEN     512 /* a buffer this size always holds a reading */
#define TFIOT_MAX_TAG_LEN         64
#define TFIOT_MAX_BATCH_READINGS  4096
#define TFIOT_MAX_BATCH_LEN       60000 /* a buffer this size always holds a batch */
#define TFIOT_BATCH_HEADER_LEN    151

/* Reading kinds and their payloads (all integers big-endian). */
#define TFIOT_KIND_TEMP_HUMIDITY  1 /* int32 temp_centi_c, uint32 humidity_centi_pct (8 bytes) */
#define TFIOT_KIND_GPS            2 /* int32 lat_e7, int32 lon_e7 (8 bytes) */
#define TFIOT_KIND_WEIGHT         3 /* int64 grams (8 bytes) */
#define TFIOT_KIND_RFID_DOOR      4 /* uint8 direction (0 in, 1 out), uint8 len, tag (1..64 bytes) */

/* Batch flags. */
#define TFIOT_FLAG_PARTIAL        0x01 /* valid readings may commit when others fail */

/* Generate a key pair from the OS CSPRNG. */
int tfiot_keygen(uint8_t out_secret32[32], uint8_t out_public33[33]);

/* Compressed public key of a secret key. */
int tfiot_public_key(const uint8_t secret32[32], uint8_t out_public33[33]);

/* SM3 digest of len bytes (data may be NULL when len == 0). */
int tfiot_sm3(const uint8_t *data, size_t len, uint8_t out32[32]);

/* SM2 signature of the message msg (e = SM3(Z || msg), default user id). */
int tfiot_sm2_sign(const uint8_t secret32[32], const uint8_t *msg, size_t len,
                   uint8_t out_sig64[64]);

/* Build and sign a reading with the device's key. seq must be >= 1 and strictly
 * increasing per device; payload must match kind exactly. Writes the encoding
 * (103..166 bytes today) to out and its length to *out_len. */
int tfiot_reading_sign(const uint8_t secret32[32], uint64_t seq, uint64_t ts_ms,
                       uint8_t kind, const uint8_t *payload, size_t payload_len,
                       uint8_t *out, size_t out_cap, size_t *out_len);

/* A batch under construction (opaque). */
typedef struct TfiotBatch tfiot_batch;

/* Start a batch signed by the gateway key; batch_seq strictly increasing per gateway
 * (the node's idempotency key). Returns NULL on error (TFIOT_ERR_KEY / _INVALID /
 * _NULL; message in tfiot_last_error). Free with tfiot_batch_free. */
tfiot_batch *tfiot_batch_new(const uint8_t gateway_secret32[32], uint64_t batch_seq,
                             uint64_t created_ms, uint8_t flags);

/* Append a signed reading (copied; it must decode, its signature is not checked).
 * TFIOT_ERR_FULL if it would exceed the caps: the batch is unchanged. */
int tfiot_batch_add(tfiot_batch *batch, const uint8_t *reading, size_t len);

/* Sign the batch and write its encoding. out == NULL with cap == 0 asks the size
 * (TFIOT_ERR_BUFFER, *out_len set). The first call seals the batch: later calls return
 * the same bytes and tfiot_batch_add returns TFIOT_ERR_STATE. An empty batch is
 * TFIOT_ERR_INVALID. */
int tfiot_batch_finish(tfiot_batch *batch, uint8_t *out, size_t cap, size_t *out_len);

/* Free a batch (NULL is ignored); its copy of the gateway key is zeroed. */
void tfiot_batch_free(tfiot_batch *batch);

/* Copy the calling thread's last error message into buf (NUL-terminated, truncated to
 * cap - 1 bytes). Returns the full message length without the NUL; 0 if the last call
 * succeeded. buf may be NULL with cap == 0 to ask the length. */
int tfiot_last_error(char *buf, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* TFNODE_IOT_H */
