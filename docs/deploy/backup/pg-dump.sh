#!/usr/bin/env bash
# Nightly logical backup of the RPM database: one custom-format dump per day, checked
# and kept for KEEP_DAYS. Run as a user with read access (the owner role is simplest):
#   DATABASE_URL=postgres://rpm_owner@db.internal/rpm BACKUP_DIR=/srv/backup/rpm pg-dump.sh
set -euo pipefail
: "${DATABASE_URL:?}" "${BACKUP_DIR:?}"
KEEP_DAYS="${KEEP_DAYS:-35}"
umask 077
mkdir -p "$BACKUP_DIR"
file="$BACKUP_DIR/rpm-$(date -u +%Y%m%dT%H%M%SZ).dump"
pg_dump --format=custom --compress=6 --no-owner --file="$file.partial" "$DATABASE_URL"
pg_restore --list "$file.partial" >/dev/null   # readable, or we fail loudly
mv "$file.partial" "$file"
find "$BACKUP_DIR" -name 'rpm-*.dump' -mtime +"$KEEP_DAYS" -delete
echo "backup written: $file ($(du -h "$file" | cut -f1))"
