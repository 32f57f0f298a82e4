CREATE DATABASE IF NOT EXISTS `keytrail`;

CREATE EXTERNAL TABLE IF NOT EXISTS `keytrail`.`events` (
  `event_id` STRING,
  `event_time` TIMESTAMP,
  `event_version` STRING,
  `event_source` STRING,
  `event_name` STRING,
  `event_type` STRING,
  `event_category` STRING,
  `aws_region` STRING,
  `recipient_account_id` STRING,
  `principal_type` STRING,
  `principal_arn` STRING,
  `principal_account_id` STRING,
  `actor` STRING,
  `session_name` STRING,
  `invoked_by` STRING,
  `source_ip` STRING,
  `source_service` STRING,
  `user_agent` STRING,
  `error_code` STRING,
  `error_message` STRING,
  `read_only` BOOLEAN,
  `management_event` BOOLEAN,
  `key_arn` STRING,
  `key_account_id` STRING,
  `request_parameters` STRING,
  `response_elements` STRING,
  `encryption_context` STRING,
  `additional_event_data` STRING,
  `service_event_details` STRING,
  `shared_event_id` STRING,
  `request_id` STRING,
  `vpc_endpoint_id` STRING,
  `source_object` STRING
)
PARTITIONED BY (`event_date` DATE)
STORED AS PARQUET
LOCATION 's3://sec-lake/keytrail/prod/events/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.event_date.type' = 'date',
  'projection.event_date.format' = 'yyyy-MM-dd',
  'projection.event_date.range' = '2020-01-01,NOW',
  'projection.event_date.interval' = '1',
  'projection.event_date.interval.unit' = 'DAYS',
  'storage.location.template' = 's3://sec-lake/keytrail/prod/events/event_date=${event_date}/'
);

CREATE EXTERNAL TABLE IF NOT EXISTS `keytrail`.`hourly_features` (
  `hour_start` TIMESTAMP,
  `hour_of_day` INT,
  `iso_weekday` INT,
  `key_arn` STRING,
  `actor` STRING,
  `key_account_id` STRING,
  `calls` BIGINT,
  `decrypt_calls` BIGINT,
  `encrypt_calls` BIGINT,
  `generate_data_key_calls` BIGINT,
  `re_encrypt_calls` BIGINT,
  `sign_verify_mac_calls` BIGINT,
  `management_calls` BIGINT,
  `read_calls` BIGINT,
  `errors` BIGINT,
  `access_denied_errors` BIGINT,
  `invalid_ciphertext_errors` BIGINT,
  `invalid_state_errors` BIGINT,
  `throttling_errors` BIGINT,
  `dry_run_errors` BIGINT,
  `via_service_calls` BIGINT,
  `cross_account_calls` BIGINT,
  `source_ips` ARRAY<STRING>,
  `user_agent_families` ARRAY<STRING>,
  `regions` ARRAY<STRING>,
  `context_shapes` ARRAY<STRING>,
  `caller_accounts` ARRAY<STRING>,
  `invoked_by_services` ARRAY<STRING>,
  `first_event_time` TIMESTAMP,
  `last_event_time` TIMESTAMP,
  `distinct_source_ips` BIGINT,
  `distinct_user_agent_families` BIGINT,
  `distinct_regions` BIGINT,
  `distinct_context_shapes` BIGINT,
  `distinct_caller_accounts` BIGINT,
  `via_service_share` DOUBLE
)
PARTITIONED BY (`event_date` DATE)
STORED AS PARQUET
LOCATION 's3://sec-lake/keytrail/prod/features/hourly/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.event_date.type' = 'date',
  'projection.event_date.format' = 'yyyy-MM-dd',
  'projection.event_date.range' = '2020-01-01,NOW',
  'projection.event_date.interval' = '1',
  'projection.event_date.interval.unit' = 'DAYS',
  'storage.location.template' = 's3://sec-lake/keytrail/prod/features/hourly/event_date=${event_date}/'
);

CREATE EXTERNAL TABLE IF NOT EXISTS `keytrail`.`alerts` (
  `alert_id` STRING,
  `detector` STRING,
  `severity` STRING,
  `score` DOUBLE,
  `window_start` TIMESTAMP,
  `window_end` TIMESTAMP,
  `account_id` STRING,
  `aws_region` STRING,
  `key_arn` STRING,
  `related_key_arns` ARRAY<STRING>,
  `actor` STRING,
  `invoked_by` STRING,
  `title` STRING,
  `reason` STRING,
  `baseline` STRING,
  `top_features` ARRAY<STRUCT<`name`: STRING, `value`: DOUBLE, `usual`: DOUBLE, `contribution`: DOUBLE, `text`: STRING>>,
  `observed_pattern` STRING,
  `mitre_attack` ARRAY<STRING>,
  `runbook` STRING,
  `evidence_event_ids` ARRAY<STRING>,
  `evidence_count` BIGINT,
  `suppressed_by` STRING,
  `incident_id` STRING
)
PARTITIONED BY (`event_date` DATE)
STORED AS PARQUET
LOCATION 's3://sec-lake/keytrail/prod/alerts/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.event_date.type' = 'date',
  'projection.event_date.format' = 'yyyy-MM-dd',
  'projection.event_date.range' = '2020-01-01,NOW',
  'projection.event_date.interval' = '1',
  'projection.event_date.interval.unit' = 'DAYS',
  'storage.location.template' = 's3://sec-lake/keytrail/prod/alerts/event_date=${event_date}/'
);

CREATE EXTERNAL TABLE IF NOT EXISTS `keytrail`.`incidents` (
  `incident_id` STRING,
  `severity` STRING,
  `title` STRING,
  `summary` STRING,
  `severity_raised_because` STRING,
  `first_seen` TIMESTAMP,
  `last_seen` TIMESTAMP,
  `actors` ARRAY<STRING>,
  `key_arns` ARRAY<STRING>,
  `account_ids` ARRAY<STRING>,
  `detectors` ARRAY<STRING>,
  `mitre_tactics` ARRAY<STRING>,
  `mitre_techniques` ARRAY<STRING>,
  `links` ARRAY<STRING>,
  `alert_count` BIGINT,
  `alert_ids` ARRAY<STRING>,
  `timeline` ARRAY<STRUCT<`time`: TIMESTAMP, `what`: STRING, `detector`: STRING, `severity`: STRING, `alert_id`: STRING, `evidence_count`: BIGINT>>
)
PARTITIONED BY (`event_date` DATE)
STORED AS PARQUET
LOCATION 's3://sec-lake/keytrail/prod/incidents/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.event_date.type' = 'date',
  'projection.event_date.format' = 'yyyy-MM-dd',
  'projection.event_date.range' = '2020-01-01,NOW',
  'projection.event_date.interval' = '1',
  'projection.event_date.interval.unit' = 'DAYS',
  'storage.location.template' = 's3://sec-lake/keytrail/prod/incidents/event_date=${event_date}/'
);
