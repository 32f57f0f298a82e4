-- purpose : hourly usage features of each KMS key by each actor, the unit that baselines,
--           rules and the isolation forest all work on
-- grain   : one row per (event_date, hour_start, key_arn, actor); key_arn is NULL for calls
--           that name no key (ListKeys, GenerateRandom, symmetric Decrypt without resources)
-- inputs  : events  — rows of the event schema (one UTC day of LAKE/events)
-- params  : $day    — DATE, the day to compute; rows of other days are ignored
-- output  : counts by operation class and error family (BIGINT), distinct counts, and the
--           distinct values themselves (lists) so first-seen questions never rescan events
with kms as (
    select
        cast(event_time as timestamptz)                         as event_time,
        cast(date_trunc('hour', event_time) as timestamptz)     as hour_start,
        key_arn,
        actor,
        key_account_id,
        principal_account_id,
        event_name,
        error_code,
        source_ip,
        aws_region,
        invoked_by,
        source_service,
        nullif(regexp_extract(coalesce(user_agent, ''), '^([A-Za-z][A-Za-z0-9_.-]*)', 1), '')
                                                                as user_agent_family,
        case
            when encryption_context is null then null
            when json_type(encryption_context) <> 'OBJECT' then '(not an object)'
            else array_to_string(list_sort(json_keys(encryption_context)), ',')
        end                                                     as context_shape
    from events
    where event_source = 'kms.amazonaws.com'
      and event_date = cast($day as date)
      and actor is not null
),

classified as (
    select
        *,
        case
            when event_name = 'Decrypt' then 'decrypt'
            when event_name = 'Encrypt' then 'encrypt'
            when event_name like 'GenerateDataKey%' then 'generate_data_key'
            when event_name = 'ReEncrypt' then 're_encrypt'
            when event_name in ('Sign', 'Verify', 'GenerateMac', 'VerifyMac',
                                'DeriveSharedSecret') then 'sign_verify_mac'
            when event_name like 'Describe%' or event_name like 'Get%'
              or event_name like 'List%' then 'read'
            when event_name = 'GenerateRandom' then 'read'
            else 'management'
        end                                                     as operation_class,
        case
            when error_code is null then null
            when error_code in ('AccessDenied', 'AccessDeniedException', 'UnauthorizedOperation',
                                'Client.UnauthorizedOperation') then 'access_denied'
            when error_code in ('InvalidCiphertextException', 'IncorrectKeyException',
                                'InvalidKeyUsageException') then 'invalid_ciphertext'
            when error_code in ('KMSInvalidStateException', 'DisabledException',
                                'KeyUnavailableException', 'NotFoundException') then 'invalid_state'
            when error_code in ('ThrottlingException', 'LimitExceededException',
                                'RequestLimitExceeded') then 'throttling'
            when error_code = 'DryRunOperationException' then 'dry_run'
            else 'other'
        end                                                     as error_family
    from kms
),

final as (
    select
        cast($day as date)                                                  as event_date,
        hour_start,
        cast(extract(hour from hour_start) as integer)                      as hour_of_day,
        cast(isodow(hour_start) as integer)                                 as iso_weekday,
        key_arn,
        actor,
        any_value(key_account_id)                                           as key_account_id,
        cast(count(*) as bigint)                                            as calls,
        cast(count(*) filter (where operation_class = 'decrypt') as bigint)           as decrypt_calls,
        cast(count(*) filter (where operation_class = 'encrypt') as bigint)           as encrypt_calls,
        cast(count(*) filter (where operation_class = 'generate_data_key') as bigint) as generate_data_key_calls,
        cast(count(*) filter (where operation_class = 're_encrypt') as bigint)        as re_encrypt_calls,
        cast(count(*) filter (where operation_class = 'sign_verify_mac') as bigint)   as sign_verify_mac_calls,
        cast(count(*) filter (where operation_class = 'management') as bigint)        as management_calls,
        cast(count(*) filter (where operation_class = 'read') as bigint)              as read_calls,
        cast(count(error_code) filter (where error_family <> 'dry_run') as bigint)    as errors,
        cast(count(*) filter (where error_family = 'access_denied') as bigint)        as access_denied_errors,
        cast(count(*) filter (where error_family = 'invalid_ciphertext') as bigint)   as invalid_ciphertext_errors,
        cast(count(*) filter (where error_family = 'invalid_state') as bigint)        as invalid_state_errors,
        cast(count(*) filter (where error_family = 'throttling') as bigint)           as throttling_errors,
        cast(count(*) filter (where error_family = 'dry_run') as bigint)              as dry_run_errors,
        cast(count(*) filter (where invoked_by is not null) as bigint)                as via_service_calls,
        cast(count(*) filter (where principal_account_id is not null
                                and key_account_id is not null
                                and principal_account_id <> key_account_id) as bigint) as cross_account_calls,
        list_sort(list_distinct(list(source_ip)))                          as source_ips,
        list_sort(list_distinct(list(user_agent_family)))                  as user_agent_families,
        list_sort(list_distinct(list(aws_region)))                         as regions,
        list_sort(list_distinct(list(context_shape)))                      as context_shapes,
        list_sort(list_distinct(list(principal_account_id)))               as caller_accounts,
        list_sort(list_distinct(list(invoked_by)))                         as invoked_by_services,
        min(event_time)                                                     as first_event_time,
        max(event_time)                                                     as last_event_time
    from classified
    group by hour_start, key_arn, actor
)

select
    *,
    cast(len(source_ips) as bigint)          as distinct_source_ips,
    cast(len(user_agent_families) as bigint) as distinct_user_agent_families,
    cast(len(regions) as bigint)             as distinct_regions,
    cast(len(context_shapes) as bigint)      as distinct_context_shapes,
    cast(len(caller_accounts) as bigint)     as distinct_caller_accounts,
    cast(via_service_calls as double) / cast(calls as double) as via_service_share
from final
order by hour_start, key_arn nulls first, actor
