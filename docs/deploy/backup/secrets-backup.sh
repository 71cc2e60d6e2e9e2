#!/usr/bin/env bash
# Key material and certificates, encrypted to an offline recipient (the hospital's
# backup key, kept away from the database backups): /etc/rpm holds rpm.env (SECRET_KEY,
# KEY_ENCRYPTION_KEY, METRICS_TOKEN, database passwords) and tls/ (server, Daphne and
# SAE CA certificates and keys). Without KEY_ENCRYPTION_KEY the QKD keys and session
# keys in a database backup cannot be read (by design); without SECRET_KEY neither
# can a KEY_ENCRYPTION_KEY derived from it.
#   RECIPIENT=backup@hospital.example BACKUP_DIR=/srv/backup/rpm-secrets secrets-backup.sh
set -euo pipefail
: "${RECIPIENT:?}" "${BACKUP_DIR:?}"
SOURCE="${SOURCE:-/etc/rpm}"
umask 077
mkdir -p "$BACKUP_DIR"
out="$BACKUP_DIR/rpm-secrets-$(date -u +%Y%m%dT%H%M%SZ).tar.gpg"
tar -C "$(dirname "$SOURCE")" -cf - "$(basename "$SOURCE")" \
    | gpg --batch --yes --encrypt --recipient "$RECIPIENT" --output "$out"
echo "secrets backup written: $out"
