-- After every `manage.py migrate` (as rpm_owner or a superuser); safe to run again.
-- The trigger of security/migrations/0004 already refuses UPDATE and DELETE on the
-- audit log for everyone; without these privileges the app's role cannot even try,
-- nor TRUNCATE (which row triggers do not see), nor disable the trigger (only the
-- table's owner can).
\set ON_ERROR_STOP on
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO rpm_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO rpm_app;
REVOKE UPDATE, DELETE, TRUNCATE ON security_auditevent FROM rpm_app;
