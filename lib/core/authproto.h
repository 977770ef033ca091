/*
 * authproto: the auth service's protocol, "postern-auth/1", over the Unix
 * socket run_dir/auth (lib/core/ipc.h framing).  The network daemons decode
 * the client's SASL exchange themselves and ask auth only "is this user
 * with this password allowed?"; they never read a password hash.
 *
 * AUTH_REQ (client -> auth), id chosen by the client to match the reply:
 *   str  service     "smtp", "pop3" or "imap"
 *   str  mechanism   "PLAIN", "LOGIN" or "USER" (POP3 USER/PASS, IMAP LOGIN)
 *   str  user        the authentication identity, as the client sent it
 *   data password    the password bytes (may contain anything but NUL)
 *   str  client      the client's IP address, for delays and logs
 *   u32  flags       AUTH_F_TLS: the session is encrypted
 * AUTH_OK (auth -> client), same id:
 *   str  user        the canonical user (lower case user@domain)
 *   str  mailbox     the mailbox directory relative to mail_dir
 *   u64  quota       bytes, 0 for no quota
 * AUTH_FAIL (auth -> client), same id:
 *   u32  code        AUTH_FAIL_CREDENTIALS or AUTH_FAIL_TEMPORARY
 *   str  reason      for the daemon's log, never for the client
 *
 * A wrong password, an unknown user and a disabled account all answer
 * AUTH_FAIL_CREDENTIALS after the same delay; AUTH_FAIL_TEMPORARY means
 * the password map could not be read (the daemon answers 454 / -ERR
 * [SYS/TEMP] / NO [UNAVAILABLE]).
 *
 * AUTH_LOOKUP (client -> auth): does this user exist?  For smtpd's
 * recipient validation; no password, no delay, never the hash.
 *   str  user        the address to look up, as the client has it
 * AUTH_USER (auth -> client), same id:
 *   u32  found       1 the password map has the user, 0 it does not
 *   str  user        the canonical user (lower case; "" if the name
 *                    cannot be a user at all)
 *   str  mailbox     found: the mailbox directory relative to mail_dir
 *                    (as in AUTH_OK); else ""
 *   u64  quota       found: bytes, 0 for no quota; else 0
 *   u32  enabled     found: 0 if the account is disabled or locked (it
 *                    still exists and still receives mail); else 0
 * or AUTH_FAIL with AUTH_FAIL_TEMPORARY when a map could not be read.
 */
#ifndef POSTERN_AUTHPROTO_H
#define POSTERN_AUTHPROTO_H

#include "ipc.h"

#define AUTH_PROTO "postern-auth/1"
#define AUTH_SOCKET_NAME "auth"

#define AUTH_REQ   (IPC_TYPE_USER + 0)
#define AUTH_OK    (IPC_TYPE_USER + 1)
#define AUTH_FAIL  (IPC_TYPE_USER + 2)
#define AUTH_LOOKUP (IPC_TYPE_USER + 3)
#define AUTH_USER  (IPC_TYPE_USER + 4)

#define AUTH_F_TLS 0x1

#define AUTH_FAIL_CREDENTIALS 1
#define AUTH_FAIL_TEMPORARY 2

/* Longest user name and password the service accepts. */
#define AUTH_MAX_USER 255
#define AUTH_MAX_PASSWORD 1024
/* Longest service, mechanism and client address strings. */
#define AUTH_MAX_NAME 64
/* Longest mailbox path in AUTH_OK and reason in AUTH_FAIL. */
#define AUTH_MAX_MAILBOX 4096
#define AUTH_MAX_REASON 1024

#endif
