CREATE SCHEMA IF NOT EXISTS "keytrail";

CREATE TABLE IF NOT EXISTS "keytrail"."events" (
  "event_id" VARCHAR,
  "event_time" TIMESTAMP,
  "event_version" VARCHAR,
  "event_source" VARCHAR,
  "event_name" VARCHAR,
  "event_type" VARCHAR,
  "event_category" VARCHAR,
  "aws_region" VARCHAR,
  "recipient_account_id" VARCHAR,
  "principal_type" VARCHAR,
  "principal_arn" VARCHAR,
  "principal_account_id" VARCHAR,
  "actor" VARCHAR,
  "session_name" VARCHAR,
  "invoked_by" VARCHAR,
  "source_ip" VARCHAR,
  "source_service" VARCHAR,
  "user_agent" VARCHAR,
  "error_code" VARCHAR,
  "error_message" VARCHAR,
  "read_only" BOOLEAN,
  "management_event" BOOLEAN,
  "key_arn" VARCHAR,
  "key_account_id" VARCHAR,
  "request_parameters" VARCHAR,
  "response_elements" VARCHAR,
  "encryption_context" VARCHAR,
  "additional_event_data" VARCHAR,
  "service_event_details" VARCHAR,
  "shared_event_id" VARCHAR,
  "request_id" VARCHAR,
  "vpc_endpoint_id" VARCHAR,
  "source_object" VARCHAR,
  "event_date" DATE
)
WITH (
  external_location = 's3://sec-lake/keytrail/prod/events',
  format = 'PARQUET',
  partitioned_by = ARRAY['event_date']
);

CALL system.sync_partition_metadata('keytrail', 'events', 'ADD');

CREATE TABLE IF NOT EXISTS "keytrail"."hourly_features" (
  "hour_start" TIMESTAMP,
  "hour_of_day" INTEGER,
  "iso_weekday" INTEGER,
  "key_arn" VARCHAR,
  "actor" VARCHAR,
  "key_account_id" VARCHAR,
  "calls" BIGINT,
  "decrypt_calls" BIGINT,
  "encrypt_calls" BIGINT,
  "generate_data_key_calls" BIGINT,
  "re_encrypt_calls" BIGINT,
  "sign_verify_mac_calls" BIGINT,
  "management_calls" BIGINT,
  "read_calls" BIGINT,
  "errors" BIGINT,
  "access_denied_errors" BIGINT,
  "invalid_ciphertext_errors" BIGINT,
  "invalid_state_errors" BIGINT,
  "throttling_errors" BIGINT,
  "dry_run_errors" BIGINT,
  "via_service_calls" BIGINT,
  "cross_account_calls" BIGINT,
  "source_ips" ARRAY(VARCHAR),
  "user_agent_families" ARRAY(VARCHAR),
  "regions" ARRAY(VARCHAR),
  "context_shapes" ARRAY(VARCHAR),
  "caller_accounts" ARRAY(VARCHAR),
  "invoked_by_services" ARRAY(VARCHAR),
  "first_event_time" TIMESTAMP,
  "last_event_time" TIMESTAMP,
  "distinct_source_ips" BIGINT,
  "distinct_user_agent_families" BIGINT,
  "distinct_regions" BIGINT,
  "distinct_context_shapes" BIGINT,
  "distinct_caller_accounts" BIGINT,
  "via_service_share" DOUBLE,
  "event_date" DATE
)
WITH (
  external_location = 's3://sec-lake/keytrail/prod/features/hourly',
  format = 'PARQUET',
  partitioned_by = ARRAY['event_date']
);

CALL system.sync_partition_metadata('keytrail', 'hourly_features', 'ADD');

CREATE TABLE IF NOT EXISTS "keytrail"."alerts" (
  "alert_id" VARCHAR,
  "detector" VARCHAR,
  "severity" VARCHAR,
  "score" DOUBLE,
  "window_start" TIMESTAMP,
  "window_end" TIMESTAMP,
  "account_id" VARCHAR,
  "aws_region" VARCHAR,
  "key_arn" VARCHAR,
  "related_key_arns" ARRAY(VARCHAR),
  "actor" VARCHAR,
  "invoked_by" VARCHAR,
  "title" VARCHAR,
  "reason" VARCHAR,
  "baseline" VARCHAR,
  "top_features" ARRAY(ROW("name" VARCHAR, "value" DOUBLE, "usual" DOUBLE, "contribution" DOUBLE, "text" VARCHAR)),
  "observed_pattern" VARCHAR,
  "mitre_attack" ARRAY(VARCHAR),
  "runbook" VARCHAR,
  "evidence_event_ids" ARRAY(VARCHAR),
  "evidence_count" BIGINT,
  "suppressed_by" VARCHAR,
  "incident_id" VARCHAR,
  "event_date" DATE
)
WITH (
  external_location = 's3://sec-lake/keytrail/prod/alerts',
  format = 'PARQUET',
  partitioned_by = ARRAY['event_date']
);

CALL system.sync_partition_metadata('keytrail', 'alerts', 'ADD');

CREATE TABLE IF NOT EXISTS "keytrail"."incidents" (
  "incident_id" VARCHAR,
  "severity" VARCHAR,
  "title" VARCHAR,
  "summary" VARCHAR,
  "severity_raised_because" VARCHAR,
  "first_seen" TIMESTAMP,
  "last_seen" TIMESTAMP,
  "actors" ARRAY(VARCHAR),
  "key_arns" ARRAY(VARCHAR),
  "account_ids" ARRAY(VARCHAR),
  "detectors" ARRAY(VARCHAR),
  "mitre_tactics" ARRAY(VARCHAR),
  "mitre_techniques" ARRAY(VARCHAR),
  "links" ARRAY(VARCHAR),
  "alert_count" BIGINT,
  "alert_ids" ARRAY(VARCHAR),
  "timeline" ARRAY(ROW("time" TIMESTAMP, "what" VARCHAR, "detector" VARCHAR, "severity" VARCHAR, "alert_id" VARCHAR, "evidence_count" BIGINT)),
  "event_date" DATE
)
WITH (
  external_location = 's3://sec-lake/keytrail/prod/incidents',
  format = 'PARQUET',
  partitioned_by = ARRAY['event_date']
);

CALL system.sync_partition_metadata('keytrail', 'incidents', 'ADD');
