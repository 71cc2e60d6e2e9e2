#!/usr/bin/env bash
# Weekly physical base backup for point-in-time recovery, with WAL archived
# continuously in between (postgresql.conf: see docs/deploy.md, "Backups").
# Run on a host that can open a replication connection as a REPLICATION role:
#   PGHOST=db.internal PGUSER=rpm_backup BACKUP_DIR=/srv/backup/rpm-base pg-basebackup.sh
set -euo pipefail
: "${BACKUP_DIR:?}"
KEEP_WEEKS="${KEEP_WEEKS:-5}"
umask 077
target="$BACKUP_DIR/base-$(date -u +%Y%m%dT%H%M%SZ)"
# Plain format, so that pg_verifybackup can check it against its manifest.
pg_basebackup --pgdata="$target" --format=plain --wal-method=stream \
    --checkpoint=fast --manifest-checksums=SHA256
pg_verifybackup "$target"
find "$BACKUP_DIR" -maxdepth 1 -name 'base-*' -mtime +$((KEEP_WEEKS * 7)) -exec rm -rf {} +
echo "base backup written: $target"
