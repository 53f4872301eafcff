// OpenSSL headers for Swift, from Debian's libssl-dev (OpenSSL 3).
#ifndef OUTBOX_COPENSSL_SHIM_H
#define OUTBOX_COPENSSL_SHIM_H

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/pem.h>
#include <openssl/bio.h>

#endif
