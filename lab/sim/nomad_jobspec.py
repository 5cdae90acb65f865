"""
Nomad jobspec for the lab simulator: HCL2 text -> the ``api.Job`` JSON that
``POST /v1/jobs/parse`` returns, with Nomad's own strictness and diagnostics, then
``Canonicalize`` (defaults), ``Validate`` (a subset of the server's checks) and the plan
``Diff`` structure.

How it follows Nomad (hashicorp/nomad, read at aa026cc, Nomad 2.0.x):

- The block/attribute schema below is derived from the ``hcl:"..."`` struct tags of
  ``api/*.go`` (jobspec2 decodes straight into those structs with gohcl, so any other
  attribute is an error). ``kind``: ``s``/``i``/``b``/``d`` string/int/bool/duration
  (``*`` = pointer, JSON ``null`` when unset), ``sl`` list of strings, ``map`` a block of
  string attributes (``env``, ``meta``), ``mapl`` a block of string lists, ``any`` a free
  form body (driver ``config``: nested blocks become lists of objects), ``block``/
  ``blocks`` one or many nested blocks of the named struct (``None``: not modelled, kept
  free form), ``lmap`` labelled blocks keyed by label (group ``volume``).
- Diagnostics are rendered like hcl ``Diagnostic.Error()``:
  ``input.hcl:<line>,<col>-<col>: <Summary>; <Detail>``; several become
  ``"<first>, and N other diagnostic(s)"``; the parse endpoint prefixes
  ``Failed to parse job: `` (command/agent/job_endpoint.go).
- Runtime interpolations (``${meta.location}``, ``${NOMAD_ADDR_http}``, ``${attr.*}``)
  stay literal, as jobspec2 leaves them for the client. HCL input variables, locals and
  function calls are not evaluated by the simulator: they are rejected with a
  diagnostic that says so (hecate renders its job files with Jinja instead).
"""

import copy
import hashlib
import json
import re

import hcl2
import lark
from hcl2.utils import SerializationOptions

FILENAME = "input.hcl"

STRUCTS = {'Job': {'region': ('Region', 's*', None),
         'namespace': ('Namespace', 's*', None),
         'id': ('ID', 's*', None),
         'name': ('Name', 's*', None),
         'type': ('Type', 's*', None),
         'priority': ('Priority', 'i*', None),
         'all_at_once': ('AllAtOnce', 'b*', None),
         'datacenters': ('Datacenters', 'sl', None),
         'node_pool': ('NodePool', 's*', None),
         'constraint': ('Constraints', 'blocks', 'Constraint'),
         'affinity': ('Affinities', 'blocks', 'Affinity'),
         'group': ('TaskGroups', 'blocks', 'TaskGroup'),
         'update': ('Update', 'block', 'UpdateStrategy'),
         'multiregion': ('Multiregion', 'block', None),
         'spread': ('Spreads', 'blocks', 'Spread'),
         'periodic': ('Periodic', 'block', 'PeriodicConfig'),
         'parameterized': ('ParameterizedJob', 'block', 'ParameterizedJobConfig'),
         'reschedule': ('Reschedule', 'block', 'ReschedulePolicy'),
         'migrate': ('Migrate', 'block', 'MigrateStrategy'),
         'meta': ('Meta', 'map', None),
         'ui': ('UI', 'block', None)},
 'TaskGroup': {'__label__': 'Name',
               'count': ('Count', 'i*', None),
               'constraint': ('Constraints', 'blocks', 'Constraint'),
               'affinity': ('Affinities', 'blocks', 'Affinity'),
               'task': ('Tasks', 'blocks', 'Task'),
               'spread': ('Spreads', 'blocks', 'Spread'),
               'volume': ('Volumes', 'lmap', 'VolumeRequest'),
               'restart': ('RestartPolicy', 'block', 'RestartPolicy'),
               'disconnect': ('Disconnect', 'block', 'DisconnectStrategy'),
               'reschedule': ('ReschedulePolicy', 'block', 'ReschedulePolicy'),
               'ephemeral_disk': ('EphemeralDisk', 'block', 'EphemeralDisk'),
               'update': ('Update', 'block', 'UpdateStrategy'),
               'migrate': ('Migrate', 'block', 'MigrateStrategy'),
               'network': ('Networks', 'blocks', 'NetworkResource'),
               'meta': ('Meta', 'map', None),
               'service': ('Services', 'blocks', 'Service'),
               'shutdown_delay': ('ShutdownDelay', 'd*', None),
               'max_run_duration': ('MaxRunDuration', 'd*', None),
               'stop_after_client_disconnect': ('StopAfterClientDisconnect', 'd*', None),
               'max_client_disconnect': ('MaxClientDisconnect', 'd*', None),
               'scaling': ('Scaling', 'block', None),
               'consul': ('Consul', 'block', 'Consul'),
               'prevent_reschedule_on_lost': ('PreventRescheduleOnLost', 'b*', None)},
 'Task': {'__label__': 'Name',
          'driver': ('Driver', 's', None),
          'user': ('User', 's', None),
          'lifecycle': ('Lifecycle', 'block', 'TaskLifecycle'),
          'config': ('Config', 'any', None),
          'constraint': ('Constraints', 'blocks', 'Constraint'),
          'affinity': ('Affinities', 'blocks', 'Affinity'),
          'env': ('Env', 'map', None),
          'service': ('Services', 'blocks', 'Service'),
          'resources': ('Resources', 'block', 'Resources'),
          'restart': ('RestartPolicy', 'block', 'RestartPolicy'),
          'meta': ('Meta', 'map', None),
          'kill_timeout': ('KillTimeout', 'd*', None),
          'logs': ('LogConfig', 'block', 'LogConfig'),
          'artifact': ('Artifacts', 'blocks', 'TaskArtifact'),
          'vault': ('Vault', 'block', 'Vault'),
          'consul': ('Consul', 'block', 'Consul'),
          'template': ('Templates', 'blocks', 'Template'),
          'dispatch_payload': ('DispatchPayload', 'block', 'DispatchPayloadConfig'),
          'volume_mount': ('VolumeMounts', 'blocks', 'VolumeMount'),
          'csi_plugin': ('CSIPluginConfig', 'block', None),
          'leader': ('Leader', 'b', None),
          'shutdown_delay': ('ShutdownDelay', 'd', None),
          'kill_signal': ('KillSignal', 's', None),
          'kind': ('Kind', 's', None),
          'scaling': ('ScalingPolicies', 'blocks', None),
          'secret': ('Secrets', 'blocks', None),
          'identity': ('Identities', 'blocks', None),
          'action': ('Actions', 'blocks', None),
          'schedule': ('Schedule', 'block', None)},
 'Resources': {'cpu': ('CPU', 'i*', None),
               'cores': ('Cores', 'i*', None),
               'memory': ('MemoryMB', 'i*', None),
               'memory_max': ('MemoryMaxMB', 'i*', None),
               'disk': ('DiskMB', 'i*', None),
               'network': ('Networks', 'blocks', 'NetworkResource'),
               'device': ('Devices', 'blocks', None),
               'numa': ('NUMA', 'block', None),
               'secrets': ('SecretsMB', 'i*', None),
               'iops': ('IOPS', 'i*', None)},
 'NetworkResource': {'mode': ('Mode', 's', None),
                     'device': ('Device', 's', None),
                     'cidr': ('CIDR', 's', None),
                     'ip': ('IP', 's', None),
                     'dns': ('DNS', 'block', 'DNSConfig'),
                     'reserved_ports': ('ReservedPorts', 'blocks', 'Port'),
                     'port': ('DynamicPorts', 'blocks', 'Port'),
                     'hostname': ('Hostname', 's', None),
                     'mbits': ('MBits', 'i*', None),
                     'cni': ('CNI', 'block', None)},
 'Port': {'__label__': 'Label',
          'static': ('Value', 'i', None),
          'to': ('To', 'i', None),
          'host_network': ('HostNetwork', 's', None),
          'ignore_collision': ('IgnoreCollision', 'b', None)},
 'DNSConfig': {'servers': ('Servers', 'sl', None),
               'searches': ('Searches', 'sl', None),
               'options': ('Options', 'sl', None)},
 'Service': {'name': ('Name', 's', None),
             'tags': ('Tags', 'sl', None),
             'canary_tags': ('CanaryTags', 'sl', None),
             'enable_tag_override': ('EnableTagOverride', 'b', None),
             'port': ('PortLabel', 's', None),
             'address_mode': ('AddressMode', 's', None),
             'address': ('Address', 's', None),
             'check': ('Checks', 'blocks', 'ServiceCheck'),
             'check_restart': ('CheckRestart', 'block', 'CheckRestart'),
             'connect': ('Connect', 'block', 'ConsulConnect'),
             'meta': ('Meta', 'map', None),
             'canary_meta': ('CanaryMeta', 'map', None),
             'tagged_addresses': ('TaggedAddresses', 'map', None),
             'task': ('TaskName', 's', None),
             'on_update': ('OnUpdate', 's', None),
             'identity': ('Identity', 'block', None),
             'weights': ('Weights', 'block', 'ServiceWeights'),
             'provider': ('Provider', 's', None),
             'cluster': ('Cluster', 's', None),
             'kind': ('Kind', 's', None)},
 'ServiceCheck': {'name': ('Name', 's', None),
                  'type': ('Type', 's', None),
                  'command': ('Command', 's', None),
                  'args': ('Args', 'sl', None),
                  'path': ('Path', 's', None),
                  'protocol': ('Protocol', 's', None),
                  'port': ('PortLabel', 's', None),
                  'expose': ('Expose', 'b', None),
                  'address_mode': ('AddressMode', 's', None),
                  'advertise': ('Advertise', 's', None),
                  'interval': ('Interval', 'd', None),
                  'timeout': ('Timeout', 'd', None),
                  'initial_status': ('InitialStatus', 's', None),
                  'notes': ('Notes', 's', None),
                  'tls_server_name': ('TLSServerName', 's', None),
                  'tls_skip_verify': ('TLSSkipVerify', 'b', None),
                  'header': ('Header', 'mapl', None),
                  'method': ('Method', 's', None),
                  'check_restart': ('CheckRestart', 'block', 'CheckRestart'),
                  'grpc_service': ('GRPCService', 's', None),
                  'grpc_use_tls': ('GRPCUseTLS', 'b', None),
                  'task': ('TaskName', 's', None),
                  'success_before_passing': ('SuccessBeforePassing', 'i', None),
                  'failures_before_critical': ('FailuresBeforeCritical', 'i', None),
                  'failures_before_warning': ('FailuresBeforeWarning', 'i', None),
                  'body': ('Body', 's', None),
                  'on_update': ('OnUpdate', 's', None)},
 'CheckRestart': {'limit': ('Limit', 'i', None),
                  'grace': ('Grace', 'd*', None),
                  'ignore_warnings': ('IgnoreWarnings', 'b', None)},
 'Constraint': {'attribute': ('LTarget', 's', None),
                'value': ('RTarget', 's', None),
                'operator': ('Operand', 's', None)},
 'Affinity': {'attribute': ('LTarget', 's', None),
              'value': ('RTarget', 's', None),
              'operator': ('Operand', 's', None),
              'weight': ('Weight', 'i*', None)},
 'Spread': {'attribute': ('Attribute', 's', None),
            'weight': ('Weight', 'i*', None),
            'target': ('SpreadTarget', 'blocks', 'SpreadTarget')},
 'SpreadTarget': {'__label__': 'Value', 'percent': ('Percent', 'i', None)},
 'RestartPolicy': {'interval': ('Interval', 'd*', None),
                   'attempts': ('Attempts', 'i*', None),
                   'delay': ('Delay', 'd*', None),
                   'mode': ('Mode', 's*', None),
                   'render_templates': ('RenderTemplates', 'b*', None)},
 'ReschedulePolicy': {'attempts': ('Attempts', 'i*', None),
                      'interval': ('Interval', 'd*', None),
                      'delay': ('Delay', 'd*', None),
                      'delay_function': ('DelayFunction', 's*', None),
                      'max_delay': ('MaxDelay', 'd*', None),
                      'unlimited': ('Unlimited', 'b*', None)},
 'UpdateStrategy': {'stagger': ('Stagger', 'd*', None),
                    'max_parallel': ('MaxParallel', 'i*', None),
                    'health_check': ('HealthCheck', 's*', None),
                    'min_healthy_time': ('MinHealthyTime', 'd*', None),
                    'healthy_deadline': ('HealthyDeadline', 'd*', None),
                    'progress_deadline': ('ProgressDeadline', 'd*', None),
                    'canary': ('Canary', 'i*', None),
                    'auto_revert': ('AutoRevert', 'b*', None),
                    'auto_promote': ('AutoPromote', 'b*', None)},
 'MigrateStrategy': {'max_parallel': ('MaxParallel', 'i*', None),
                     'health_check': ('HealthCheck', 's*', None),
                     'min_healthy_time': ('MinHealthyTime', 'd*', None),
                     'healthy_deadline': ('HealthyDeadline', 'd*', None)},
 'EphemeralDisk': {'sticky': ('Sticky', 'b*', None),
                   'migrate': ('Migrate', 'b*', None),
                   'size': ('SizeMB', 'i*', None)},
 'VolumeRequest': {'__label__': 'Name',
                   'type': ('Type', 's', None),
                   'source': ('Source', 's', None),
                   'read_only': ('ReadOnly', 'b', None),
                   'sticky': ('Sticky', 'b', None),
                   'access_mode': ('AccessMode', 's', None),
                   'attachment_mode': ('AttachmentMode', 's', None),
                   'mount_options': ('MountOptions', 'block', None),
                   'per_alloc': ('PerAlloc', 'b', None)},
 'VolumeMount': {'volume': ('Volume', 's*', None),
                 'destination': ('Destination', 's*', None),
                 'read_only': ('ReadOnly', 'b*', None),
                 'propagation_mode': ('PropagationMode', 's*', None),
                 'selinux_label': ('SELinuxLabel', 's*', None)},
 'Template': {'source': ('SourcePath', 's*', None),
              'destination': ('DestPath', 's*', None),
              'data': ('EmbeddedTmpl', 's*', None),
              'change_mode': ('ChangeMode', 's*', None),
              'change_script': ('ChangeScript', 'block', 'ChangeScript'),
              'change_signal': ('ChangeSignal', 's*', None),
              'once': ('Once', 'b*', None),
              'splay': ('Splay', 'd*', None),
              'perms': ('Perms', 's*', None),
              'uid': ('Uid', 'i*', None),
              'gid': ('Gid', 'i*', None),
              'left_delimiter': ('LeftDelim', 's*', None),
              'right_delimiter': ('RightDelim', 's*', None),
              'env': ('Envvars', 'b*', None),
              'vault_grace': ('VaultGrace', 'd*', None),
              'wait': ('Wait', 'block', 'WaitConfig'),
              'error_on_missing_key': ('ErrMissingKey', 'b*', None)},
 'WaitConfig': {'min': ('Min', 'd*', 'required'), 'max': ('Max', 'd*', 'required')},
 'ChangeScript': {'command': ('Command', 's*', 'required'),
                  'args': ('Args', 'sl', None),
                  'timeout': ('Timeout', 'd*', None),
                  'fail_on_error': ('FailOnError', 'b*', 'required'),
                  'run_on_first_render': ('RunOnFirstRender', 'b*', None)},
 'Vault': {'policies': ('Policies', 'sl', None),
           'role': ('Role', 's', None),
           'namespace': ('Namespace', 's*', None),
           'cluster': ('Cluster', 's', None),
           'env': ('Env', 'b*', None),
           'disable_file': ('DisableFile', 'b*', None),
           'change_mode': ('ChangeMode', 's*', None),
           'change_signal': ('ChangeSignal', 's*', None),
           'allow_token_expiration': ('AllowTokenExpiration', 'b*', None)},
 'Consul': {'namespace': ('Namespace', 's', None),
            'cluster': ('Cluster', 's', None),
            'partition': ('Partition', 's', None)},
 'TaskLifecycle': {'hook': ('Hook', 's', 'required'), 'sidecar': ('Sidecar', 'b', None)},
 'LogConfig': {'max_files': ('MaxFiles', 'i*', None),
               'max_file_size': ('MaxFileSizeMB', 'i*', None),
               'enabled': ('Enabled', 'b*', None),
               'disabled': ('Disabled', 'b*', None)},
 'TaskArtifact': {'source': ('GetterSource', 's*', None),
                  'options': ('GetterOptions', 'map', None),
                  'headers': ('GetterHeaders', 'map', None),
                  'mode': ('GetterMode', 's*', None),
                  'insecure': ('GetterInsecure', 'b*', None),
                  'destination': ('RelativeDest', 's*', None),
                  'chown': ('Chown', 'b', None)},
 'ServiceWeights': {'passing': ('Passing', 'i', None), 'warning': ('Warning', 'i', None)},
 'DispatchPayloadConfig': {'file': ('File', 's', None)},
 'ConsulConnect': {'native': ('Native', 'b', None),
                   'gateway': ('Gateway', 'block', None),
                   'sidecar_service': ('SidecarService', 'block', 'ConsulSidecarService'),
                   'sidecar_task': ('SidecarTask', 'block', None)},
 'ConsulSidecarService': {'tags': ('Tags', 'sl', None),
                          'port': ('Port', 's', None),
                          'proxy': ('Proxy', 'block', 'ConsulProxy'),
                          'disable_default_tcp_check': ('DisableDefaultTCPCheck', 'b', None),
                          'meta': ('Meta', 'map', None)},
 'ConsulProxy': {'local_service_address': ('LocalServiceAddress', 's', None),
                 'local_service_port': ('LocalServicePort', 'i', None),
                 'expose': ('Expose', 'block', 'ConsulExposeConfig'),
                 'upstreams': ('Upstreams', 'blocks', 'ConsulUpstream'),
                 'transparent_proxy': ('TransparentProxy', 'block', None),
                 'config': ('Config', 'any', None)},
 'ConsulUpstream': {'destination_name': ('DestinationName', 's', None),
                    'destination_namespace': ('DestinationNamespace', 's', None),
                    'destination_peer': ('DestinationPeer', 's', None),
                    'destination_partition': ('DestinationPartition', 's', None),
                    'destination_type': ('DestinationType', 's', None),
                    'local_bind_port': ('LocalBindPort', 'i', None),
                    'datacenter': ('Datacenter', 's', None),
                    'local_bind_address': ('LocalBindAddress', 's', None),
                    'local_bind_socket_path': ('LocalBindSocketPath', 's', None),
                    'local_bind_socket_mode': ('LocalBindSocketMode', 's', None),
                    'mesh_gateway': ('MeshGateway', 'block', None),
                    'config': ('Config', 'any', None)},
 'ConsulExposeConfig': {'path': ('Paths', 'blocks', 'ConsulExposePath')},
 'ConsulExposePath': {'path': ('Path', 's', None),
                      'protocol': ('Protocol', 's', None),
                      'local_path_port': ('LocalPathPort', 'i', None),
                      'listener_port': ('ListenerPort', 's', None)},
 'PeriodicConfig': {'enabled': ('Enabled', 'b*', None),
                    'cron': ('Spec', 's*', None),
                    'crons': ('Specs', 'sl', None),
                    'prohibit_overlap': ('ProhibitOverlap', 'b*', None),
                    'time_zone': ('TimeZone', 's*', None)},
 'ParameterizedJobConfig': {'payload': ('Payload', 's', None),
                            'meta_required': ('MetaRequired', 'sl', None),
                            'meta_optional': ('MetaOptional', 'sl', None)},
 'DisconnectStrategy': {'lost_after': ('LostAfter', 'd*', None),
                        'stop_on_client_after': ('StopOnClientAfter', 'd*', None),
                        'replace': ('Replace', 'b*', None),
                        'reconcile': ('Reconcile', 's*', None)}}


# Free-form blocks the simulator does not model field by field (accepted as written).
LABELLED = {"TaskGroup", "Task", "Port", "VolumeRequest", "SpreadTarget"}

# Job-level blocks of jobspec2's jobConfig (types.config.go) besides the Job fields.
JOB_EXTRA = {
    "vault": ("__vault__", "block", "Vault"),
    "task": ("__tasks__", "blocks", "Task"),
    "secret": ("__secrets__", "blocks", None),
}

# Fields the server sets (not in the jobspec) that a canonicalized job carries.
JOB_SERVER_FIELDS = (
    "ParentID", "Stop", "Status", "StatusDescription", "Stable", "Version", "SubmitTime",
    "CreateIndex", "ModifyIndex", "JobModifyIndex", "ConsulNamespace", "VaultNamespace",
    "NomadTokenID", "Payload", "Dispatched", "DispatchIdempotencyToken", "VersionTag",
)


class Diag:
    """One hcl diagnostic (error severity)."""

    def __init__(self, summary, detail, line, col, end_col=None, end_line=None):
        self.summary, self.detail = summary, detail
        self.line, self.col = line or 1, col or 1
        self.end_line = end_line or self.line
        self.end_col = end_col or (self.col + 1)

    def range(self):
        if self.end_line == self.line:
            return f"{FILENAME}:{self.line},{self.col}-{self.end_col}"
        return f"{FILENAME}:{self.line},{self.col}-{self.end_line},{self.end_col}"

    def __str__(self):
        return f"{self.range()}: {self.summary}; {self.detail}"


class JobspecError(Exception):
    """HCL diagnostics; ``str()`` is hcl's ``Diagnostics.Error()``."""

    def __init__(self, diags):
        self.diags = list(diags)
        first = str(self.diags[0])
        if len(self.diags) > 1:
            first += f", and {len(self.diags) - 1} other diagnostic(s)"
        super().__init__(first)


# -- HCL literals --------------------------------------------------------------------
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


def _unescape(body):
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                i += 2
                continue
            if nxt in "uU":
                width = 4 if nxt == "u" else 8
                digits = body[i + 2 : i + 2 + width]
                try:
                    out.append(chr(int(digits, 16)))
                    i += 2 + width
                    continue
                except ValueError:
                    pass
        out.append(ch)
        i += 1
    return "".join(out)


def _template_escapes(text):
    # HCL template escapes: $${ -> ${ and %%{ -> %{
    return text.replace("$${", "${").replace("%%{", "%{")


def _heredoc(raw):
    m = re.match(r"<<(-?)([A-Za-z][A-Za-z0-9._-]*)\r?\n(.*)\n[ \t]*\2\s*$", raw, re.S)
    if not m:
        return None
    trim, body = m.group(1), m.group(3) + "\n"
    if trim:
        lines = body.split("\n")
        indents = [len(ln) - len(ln.lstrip(" \t")) for ln in lines if ln.strip()]
        cut = min(indents) if indents else 0
        body = "\n".join(ln[cut:] for ln in lines)
    return _template_escapes(body)


class Expression(str):
    """A non-literal HCL expression (``var.x``, ``upper("x")``), as source text."""


def literal(value):
    """python-hcl2's serialized value -> Python value (strings unquoted, escapes applied)."""
    if isinstance(value, str):
        if value.startswith('"<<') and value.endswith('"'):
            doc = _heredoc(value[1:-1])
            if doc is not None:
                return doc
        if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
            return _template_escapes(_unescape(value[1:-1]))
        if value.startswith("${") and value.endswith("}"):
            return Expression(value[2:-1])
        return value
    if isinstance(value, list):
        return [literal(v) for v in value]
    if isinstance(value, dict):
        return {
            literal(k) if isinstance(k, str) and k.startswith('"') else k: literal(v)
            for k, v in value.items()
            if k not in ("__is_block__", "__comments__", "__inline_comments__")
        }
    return value


_DURATION_UNITS = {
    "ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000,
    "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000,
}


def parse_duration(text):
    """Go's ``time.ParseDuration``: ``"1h30m"``, ``"10s"``, ``"1.5s"`` -> nanoseconds."""
    if not isinstance(text, str):
        raise ValueError(f"time: invalid duration {text!r}")
    s = text.strip()
    if s in ("0", "+0", "-0"):
        return 0
    sign = -1 if s.startswith("-") else 1
    s = s.lstrip("+-")
    if not s:
        raise ValueError(f'time: invalid duration "{text}"')
    total, pos = 0.0, 0
    for m in re.finditer(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)", s):
        if m.start() != pos:
            raise ValueError(f'time: invalid duration "{text}"')
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s):
        if re.fullmatch(r"\d+(\.\d*)?", s[pos:]):
            raise ValueError(f'time: missing unit in duration "{text}"')
        raise ValueError(f'time: invalid duration "{text}"')
    return sign * int(round(total))


def format_duration(ns):
    """Go's ``time.Duration.String()`` (enough of it for messages): 1h30m0s, 10s, 500ms."""
    ns = int(ns or 0)
    if ns == 0:
        return "0s"
    neg, ns = ns < 0, abs(ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                val = ns / size
                text = f"{val:.9f}".rstrip("0").rstrip(".")
                return ("-" if neg else "") + text + unit
    h, rem = divmod(ns, 3_600_000_000_000)
    m, rem = divmod(rem, 60_000_000_000)
    sec = rem / 1_000_000_000
    sec_text = f"{sec:.9f}".rstrip("0").rstrip(".") + "s"
    out = (f"{h}h" if h else "") + (f"{m}m" if h or m else "") + sec_text
    return ("-" if neg else "") + out


# -- decoding -------------------------------------------------------------------------
def _tok(tree):
    """(name, line, col) of an identifier/keyword tree or token."""
    node = tree
    while isinstance(node, lark.Tree):
        if not node.children:
            meta = node.meta
            return "", getattr(meta, "line", 1), getattr(meta, "column", 1)
        node = node.children[0]
    return str(node), node.line, node.column


def _items(body_tree):
    """Attributes and blocks of a raw ``body`` tree, in order."""
    for child in body_tree.children:
        if isinstance(child, lark.Tree) and child.data in ("attribute", "block"):
            yield child


def _block_parts(block_tree):
    name, line, col = _tok(block_tree.children[0])
    labels, body = [], None
    for child in block_tree.children[1:]:
        if isinstance(child, lark.Tree) and child.data == "body":
            body = child
            break
        if isinstance(child, lark.Tree) and child.data in ("string", "identifier", "keyword"):
            labels.append(child)
    return name, line, col, labels, body


def _unwrap_labels(value, nlabels):
    labels = []
    for _ in range(nlabels):
        if not isinstance(value, dict) or len([k for k in value if not k.startswith("__")]) != 1:
            break
        key = next(k for k in value if not k.startswith("__"))
        labels.append(literal(key) if key.startswith('"') else key)
        value = value[key]
    return labels, value


class Decoder:
    def __init__(self):
        self.diags = []

    def err(self, summary, detail, line, col, length=1):
        self.diags.append(Diag(summary, detail, line, col, col + max(length, 1)))

    # One body of a modelled struct -> dict of Go field name -> value
    def struct(self, struct_name, body_tree, data, extra=None, where=None):
        spec = dict(STRUCTS[struct_name])
        spec.update(extra or {})
        label_field = spec.pop("__label__", None)
        out = empty(struct_name)
        seen_attrs, seen_blocks, counts = {}, {}, {}
        for item in _items(body_tree):
            if item.data == "attribute":
                name, line, col = _tok(item.children[0])
                if name in seen_attrs:
                    pl, pc = seen_attrs[name]
                    self.err("Attribute redefined",
                             f'The argument "{name}" was already set at {FILENAME}:{pl},{pc}-{pc + len(name)}. '
                             "Each argument may be set only once.", line, col, len(name))
                    continue
                seen_attrs[name] = (line, col)
                field = spec.get(name)
                if field is None or field[1] in ("block", "blocks", "lmap", "map", "mapl", "any"):
                    detail = f'An argument named "{name}" is not expected here.'
                    if field is not None:
                        detail += f' Did you mean to define a block of type "{name}"?'
                    self.err("Unsupported argument", detail, line, col, len(name))
                    continue
                go, kind, _ = field
                out[go] = self.value(literal(data.get(name)), kind, name, line, col)
            else:
                name, line, col, labels, body = _block_parts(item)
                field = spec.get(name)
                if field is None or field[1] not in ("block", "blocks", "lmap", "map", "mapl", "any"):
                    detail = f'Blocks of type "{name}" are not expected here.'
                    if field is not None:
                        detail += (f' Did you mean to define argument "{name}"? If so, use the '
                                   "equals sign to assign it a value.")
                    self.err("Unsupported block type", detail, line, col, len(name))
                    continue
                go, kind, sub = field
                idx = counts.get(name, 0)
                counts[name] = idx + 1
                raw = (
                    (data.get(name) or [None] * (idx + 1))[idx] if isinstance(data.get(name), list) else data.get(name)
                )
                want_labels = 1 if (sub in LABELLED or kind == "lmap") else 0
                if len(labels) != want_labels:
                    lline, lcol = line, col
                    if want_labels and not labels:
                        self.err(f"Missing name for {name}",
                                 f"All {name} blocks must have 1 labels (name).", lline, lcol, len(name))
                    else:
                        self.err(f"Extraneous label for {name}",
                                 f"No labels are expected for {name} blocks." if not want_labels
                                 else f"Only 1 labels (name) are expected for {name} blocks.",
                                 lline, lcol, len(name))
                    continue
                label_values, raw_body = _unwrap_labels(raw, len(labels))
                if kind == "block":
                    if name in seen_blocks:
                        pl, pc = seen_blocks[name]
                        self.err(f"Duplicate {name} block",
                                 f"Only one {name} block is allowed. Another was defined at "
                                 f"{FILENAME}:{pl},{pc}-{pc + len(name)}.", line, col, len(name))
                        continue
                    seen_blocks[name] = (line, col)
                if kind in ("map", "mapl"):
                    value = self.map_body(body, raw_body or {}, kind)
                elif kind == "any" or sub is None:
                    value = self.free_body(body, raw_body or {})
                else:
                    value = self.struct(sub, body, raw_body or {}, where=name)
                    if sub in LABELLED or kind == "lmap":
                        value[STRUCTS[sub]["__label__"]] = label_values[0] if label_values else ""
                    self.required(sub, value, body_tree=body, line=line, col=col)
                if kind in ("block", "map", "mapl", "any"):
                    if kind in ("map", "mapl") and out.get(go):
                        out[go].update(value)
                    else:
                        out[go] = value
                elif kind == "lmap":
                    out[go] = out.get(go) or {}
                    out[go][label_values[0]] = value
                else:
                    out[go] = (out.get(go) or []) + [value]
        out.pop(None, None)
        if label_field:
            out.setdefault(label_field, None)
        return out

    def required(self, struct_name, value, body_tree, line, col):
        present = {(_tok(i.children[0])[0]) for i in _items(body_tree) if i.data == "attribute"}
        for hname, field in STRUCTS[struct_name].items():
            if hname == "__label__" or field[2] != "required":
                continue
            if hname not in present:
                self.err("Missing required argument",
                         f'The argument "{hname}" is required, but no definition was found.',
                         line, col, 1)

    def map_body(self, body_tree, data, kind):
        out = {}
        for item in _items(body_tree):
            name, line, col = _tok(item.children[0])
            if item.data == "block":
                self.err(f'Unexpected "{name}" block', "Blocks are not allowed here.", line, col, len(name))
                continue
            key = literal(name) if name.startswith('"') else name
            val = literal(data.get(name, data.get(key)))
            if kind == "mapl":
                out[key] = [self.value(v, "s", key, line, col) for v in (val if isinstance(val, list) else [val])]
            else:
                out[key] = self.value(val, "s", key, line, col)
        return out

    def free_body(self, body_tree, data):
        """Driver config and unmodelled blocks: attributes as values, nested blocks as lists."""
        out = {}
        counts = {}
        for item in _items(body_tree):
            if item.data == "attribute":
                name, line, col = _tok(item.children[0])
                val = literal(data.get(name))
                self.check_expr(val, line, col)
                out[name] = val
            else:
                name, line, col, labels, body = _block_parts(item)
                idx = counts.get(name, 0)
                counts[name] = idx + 1
                raw = data.get(name)
                raw = raw[idx] if isinstance(raw, list) and idx < len(raw) else {}
                label_values, raw_body = _unwrap_labels(raw, len(labels))
                value = self.free_body(body, raw_body or {})
                for label in reversed(label_values):
                    value = {label: value}
                out.setdefault(name, []).append(value)
        return out

    def check_expr(self, val, line, col):
        if isinstance(val, Expression):
            root = re.split(r"[.\[(]", val, maxsplit=1)[0]
            if root in ("var", "local"):
                self.err("Unknown variable", f'There is no variable named "{root}".', line, col, len(root))
            else:
                self.err("Unsupported expression",
                         f"The lab simulator evaluates literal values only, not \"{val}\".",
                         line, col, 1)
            return False
        if isinstance(val, list):
            return all(self.check_expr(v, line, col) for v in val)
        if isinstance(val, dict):
            return all(self.check_expr(v, line, col) for v in val.values())
        return True

    def value(self, val, kind, name, line, col):
        if not self.check_expr(val, line, col):
            return None
        base = kind.rstrip("*")
        if val is None:
            return None if kind.endswith("*") or base == "sl" else ZERO[base]
        try:
            if base == "s":
                if isinstance(val, (dict, list)):
                    raise TypeError("string required")
                if isinstance(val, bool):
                    return "true" if val else "false"
                if isinstance(val, float) and val.is_integer():
                    return str(int(val))
                return str(val)
            if base == "i":
                if isinstance(val, (bool, dict, list)):
                    raise TypeError("number required")
                if isinstance(val, str):
                    val = float(val.strip())
                if isinstance(val, float):
                    if not val.is_integer():
                        raise TypeError("a whole number is required")
                    val = int(val)
                return int(val)
            if base == "f":
                return float(val)
            if base == "b":
                if isinstance(val, bool):
                    return val
                if isinstance(val, str) and val in ("true", "false"):
                    return val == "true"
                raise TypeError("bool required")
            if base == "d":
                if isinstance(val, (bool, dict, list)):
                    raise TypeError("string required")
                if isinstance(val, (int, float)):
                    return int(val)
                try:
                    return parse_duration(val)
                except ValueError as exc:
                    self.err("Unsuitable duration value", str(exc), line, col, len(name))
                    return None
            if base == "sl":
                if not isinstance(val, list):
                    raise TypeError("list of string required")
                return [self.value(v, "s", name, line, col) for v in val]
        except (TypeError, ValueError) as exc:
            msg = (
                str(exc)
                if "required" in str(exc)
                else f"{ {'s': 'string', 'i': 'number', 'b': 'bool'}.get(base, base) } required"
            )
            self.err("Incorrect attribute value type",
                     f'Inappropriate value for attribute "{name}": {msg}.', line, col, len(name))
            return None
        return val


ZERO = {"s": "", "i": 0, "b": False, "d": 0, "f": 0.0, "sl": None}


def empty(struct_name):
    """A struct as Go's encoding/json prints a zero value: pointers/slices/maps null."""
    out = {}
    for hname, field in STRUCTS[struct_name].items():
        if hname == "__label__":
            out[field] = None if struct_name == "TaskGroup" else ""
            continue
        go, kind, _ = field
        if kind.endswith("*") or kind in ("sl", "block", "blocks", "lmap", "map", "mapl", "any"):
            out[go] = None
        else:
            out[go] = ZERO[kind]
    return out


def _syntax_diag(exc, text):
    line = getattr(exc, "line", 1) or 1
    col = getattr(exc, "column", 1) or 1
    token = getattr(exc, "token", None)
    if token is not None and getattr(token, "type", "") == "$END":
        return Diag("Unclosed configuration block",
                    "There is no closing brace for this block before the end of the file. "
                    "This may be caused by incorrect brace nesting elsewhere in this file.",
                    line, col)
    got = str(token).strip() if token is not None else text.splitlines()[line - 1][col - 1 : col] if text else ""
    return Diag("Invalid expression" if getattr(exc, "expected", None) and "LSQB" in (exc.expected or ())
                else "Argument or block definition required",
                f"Unexpected {got!r}: an argument or block definition is required here."
                if got else "An argument or block definition is required here.",
                line, col)


OPTIONS = SerializationOptions(
    with_comments=False, with_meta=False, preserve_heredocs=True, strip_string_quotes=False
)


def parse(text, variables=None):
    """
    HCL2 jobspec -> api.Job JSON (not canonicalized), like ``jobspec2.ParseWithConfig``
    followed by ``normalizeJob``. Raises :class:`JobspecError`.
    """
    try:
        tree = hcl2.parses_to_tree(text)
    except lark.exceptions.UnexpectedInput as exc:
        raise JobspecError([_syntax_diag(exc, text)]) from None
    except lark.exceptions.LarkError as exc:  # pragma: no cover - defensive
        raise JobspecError([Diag("Invalid syntax", str(exc).splitlines()[0], 1, 1)]) from None
    data = hcl2.api.serialize(hcl2.api.transform(tree, discard_comments=True), serialization_options=OPTIONS)
    body = tree.children[0]
    dec = Decoder()
    jobs = []
    for item in _items(body):
        if item.data == "attribute":
            name, line, col = _tok(item.children[0])
            dec.err("Unsupported argument", f'An argument named "{name}" is not expected here.',
                    line, col, len(name))
            continue
        name, line, col, labels, bbody = _block_parts(item)
        if name in ("variable", "variables", "locals"):
            dec.err("Unsupported block type",
                    f'The lab simulator does not evaluate "{name}" blocks; render the job '
                    "file before submitting it.", line, col, len(name))
            continue
        if name != "job":
            dec.err("Unsupported block type", f'Blocks of type "{name}" are not expected here.',
                    line, col, len(name))
            continue
        if len(labels) != 1:
            dec.err("Missing name for job", "All job blocks must have 1 labels (name).", line, col, 3)
            continue
        if jobs:
            pl, pc = jobs[0][1]
            dec.err("Duplicate job block", f"Only one job block is allowed. Another was defined at "
                    f"{FILENAME}:{pl},{pc}-{pc + 3}.", line, col, 3)
            continue
        raw = data.get("job") or []
        raw = raw[len(jobs)] if len(raw) > len(jobs) else {}
        (job_id,), raw_body = _unwrap_labels(raw, 1) if raw else ([""], {})
        job = dec.struct("Job", bbody, raw_body or {}, extra=JOB_EXTRA)
        jobs.append((job_id, (line, col), job))
    if dec.diags:
        raise JobspecError(dec.diags)
    if not jobs:
        raise JobspecError([Diag("Missing job block", "A job block is required.", 1, 1)])
    job_id, _, job = jobs[0]
    return _default_operands(_normalize(job, job_id))


def _default_operands(job):
    """jobspec2/hcl_conversions.go decodeConstraint/decodeAffinity: no operator is "="."""
    owners = [job]
    for group in job.get("TaskGroups") or []:
        owners.append(group)
        owners.extend(group.get("Tasks") or [])
    for owner in owners:
        for con in (owner.get("Constraints") or []) + (owner.get("Affinities") or []):
            if not con.get("Operand"):
                con["Operand"] = "="
    return job


def _normalize(job, job_id):
    """jobspec2 ``normalizeJob``: ID/Name from the label, top-level tasks, ports, templates, vault."""
    vault = job.pop("__vault__", None)
    tasks = job.pop("__tasks__", None) or []
    job.pop("__secrets__", None)
    if job.get("Name") is None:
        job["Name"] = job_id
    if job.get("ID") is None:
        job["ID"] = job_id
    groups = []
    for task in tasks:
        group = empty("TaskGroup")
        group["Name"] = task["Name"]
        group["Tasks"] = [task]
        groups.append(group)
    job["TaskGroups"] = groups + (job.get("TaskGroups") or []) if (groups or job.get("TaskGroups")) else None
    if vault:
        _normalize_vault(vault)
    for group in job.get("TaskGroups") or []:
        _normalize_ports(group.get("Networks"))
        for task in group.get("Tasks") or []:
            if task.get("Resources"):
                _normalize_ports(task["Resources"].get("Networks"))
            for tmpl in task.get("Templates") or []:
                tmpl["ChangeMode"] = tmpl["ChangeMode"] if tmpl["ChangeMode"] is not None else "restart"
                tmpl["Perms"] = tmpl["Perms"] if tmpl["Perms"] is not None else "0644"
                tmpl["Splay"] = tmpl["Splay"] if tmpl["Splay"] is not None else 5_000_000_000
                tmpl["ErrMissingKey"] = tmpl["ErrMissingKey"] if tmpl["ErrMissingKey"] is not None else False
            if task.get("Vault"):
                _normalize_vault(task["Vault"])
            elif vault:
                task["Vault"] = copy.deepcopy(vault)
    return job


def _normalize_vault(vault):
    if vault.get("Env") is None:
        vault["Env"] = True
    if vault.get("DisableFile") is None:
        vault["DisableFile"] = False
    if vault.get("ChangeMode") is None:
        vault["ChangeMode"] = "restart"


def _normalize_ports(networks):
    for net in networks or []:
        ports = net.get("DynamicPorts") or []
        if not ports:
            continue
        dynamic = [p for p in ports if not p.get("Value")]
        reserved = [p for p in ports if p.get("Value")]
        net["DynamicPorts"] = dynamic or None
        net["ReservedPorts"] = (net.get("ReservedPorts") or []) + reserved or None


# -- canonicalize (api/jobs.go, api/tasks.go, api/services.go, api/resources.go) -------------
SEC = 1_000_000_000
MIN = 60 * SEC


def _fill(obj, defaults):
    for key, val in defaults.items():
        if obj.get(key) is None:
            obj[key] = copy.deepcopy(val)


DEFAULT_UPDATE = {
    "Stagger": 30 * SEC, "MaxParallel": 1, "HealthCheck": "checks", "MinHealthyTime": 10 * SEC,
    "HealthyDeadline": 5 * MIN, "ProgressDeadline": 10 * MIN, "AutoRevert": False, "Canary": 0,
    "AutoPromote": False,
}
DEFAULT_MIGRATE = {"MaxParallel": 1, "HealthCheck": "checks", "MinHealthyTime": 10 * SEC,
                   "HealthyDeadline": 5 * MIN}
RESCHEDULE = {
    "service": {"Delay": 30 * SEC, "DelayFunction": "exponential", "MaxDelay": 60 * MIN,
                "Unlimited": True, "Attempts": 0, "Interval": 0},
    "batch": {"Attempts": 1, "Interval": 24 * 60 * MIN, "Delay": 5 * SEC, "DelayFunction": "constant",
              "MaxDelay": 0, "Unlimited": False},
}
RESTART = {
    "service": {"Delay": 15 * SEC, "Attempts": 2, "Interval": 30 * MIN, "Mode": "fail",
                "RenderTemplates": False},
    "batch": {"Delay": 15 * SEC, "Attempts": 3, "Interval": 24 * 60 * MIN, "Mode": "fail",
              "RenderTemplates": False},
}


def _update_empty(upd):
    return upd is None or all(v is None for v in upd.values())


def canonicalize(job):
    """``api.Job.Canonicalize`` on the JSON form; idempotent. Returns the job."""
    for key in JOB_SERVER_FIELDS:
        job.setdefault(key, None)
    job_type = job.get("Type") or "service"
    _fill(job, {"ID": "", "ParentID": "", "Namespace": "default", "Priority": 50, "Stop": False,
                "Region": "global", "NodePool": "", "Type": "service", "AllAtOnce": False,
                "ConsulNamespace": "", "VaultNamespace": "", "NomadTokenID": "", "Status": "",
                "StatusDescription": "", "Stable": False, "Version": 0, "CreateIndex": 0,
                "ModifyIndex": 0, "JobModifyIndex": 0})
    if job.get("Name") is None:
        job["Name"] = job["ID"]
    if job.get("Periodic") is not None:  # api/jobs.go PeriodicConfig.Canonicalize
        _fill(job["Periodic"], {"Enabled": True, "Spec": "", "Specs": [], "SpecType": "cron",
                                "ProhibitOverlap": False})
        job["Periodic"]["TimeZone"] = job["Periodic"].get("TimeZone") or "UTC"
    if job.get("Update") is not None:
        _fill(job["Update"], DEFAULT_UPDATE)
    elif job_type in ("service", "system"):
        job["Update"] = dict(DEFAULT_UPDATE)
    for group in job.get("TaskGroups") or []:
        _canon_group(group, job)
    for aff in job.get("Affinities") or []:
        _fill(aff, {"Weight": 50})
    return job


def _canon_group(group, job):
    job_type = job.get("Type") or "service"
    if group.get("Name") is None:
        group["Name"] = ""
    if group.get("Count") is None:
        group["Count"] = 1
    if group.get("EphemeralDisk") is None:
        group["EphemeralDisk"] = {"Sticky": False, "Migrate": False, "SizeMB": 300}
    else:
        _fill(group["EphemeralDisk"], {"Sticky": False, "Migrate": False, "SizeMB": 300})
    job_update = job.get("Update")
    if job_update is not None and group.get("Update") is not None:
        merged = dict(job_update)
        merged.update({k: v for k, v in group["Update"].items() if v is not None})
        group["Update"] = merged
    elif job_update is not None and not _update_empty(job_update):
        group["Update"] = dict(job_update)
    if group.get("Update") is not None:
        _fill(group["Update"], DEFAULT_UPDATE)
    if job.get("Reschedule") is not None:
        merged = dict(job["Reschedule"])
        merged.update({k: v for k, v in (group.get("ReschedulePolicy") or {}).items() if v is not None})
        group["ReschedulePolicy"] = merged
    if group.get("ReschedulePolicy") is None and job_type not in ("sysbatch", "system"):
        group["ReschedulePolicy"] = dict(RESCHEDULE.get(job_type, RESCHEDULE["service"]))
    if group.get("ReschedulePolicy") is not None:
        _fill(group["ReschedulePolicy"], RESCHEDULE.get(job_type, {"Attempts": 0, "Interval": 0, "Delay": 0,
                                                                    "DelayFunction": "", "MaxDelay": 0,
                                                                    "Unlimited": False}))
    if job.get("Migrate") is not None:
        merged = dict(job["Migrate"])
        merged.update({k: v for k, v in (group.get("Migrate") or {}).items() if v is not None})
        group["Migrate"] = merged
    if group.get("Migrate") is None and job_type == "service":
        group["Migrate"] = {}
    if group.get("Migrate") is not None:
        _fill(group["Migrate"], DEFAULT_MIGRATE)
    restart = dict(RESTART["service" if job_type in ("service", "system") else "batch"])
    restart.update({k: v for k, v in (group.get("RestartPolicy") or {}).items() if v is not None})
    group["RestartPolicy"] = restart
    for task in group.get("Tasks") or []:
        _canon_task(task, group, job)
    for aff in group.get("Affinities") or []:
        _fill(aff, {"Weight": 50})
    for svc in group.get("Services") or []:
        _canon_service(svc, None, group, job)


def _canon_task(task, group, job):
    res = task.get("Resources")
    if res is None:
        res = task["Resources"] = empty("Resources")
    if res.get("Cores") is None:
        res["Cores"] = 0
        if res.get("CPU") is None:
            res["CPU"] = 100
    if res.get("CPU") is None:
        res["CPU"] = 0
    if res.get("MemoryMB") is None:
        res["MemoryMB"] = 300
    if task.get("KillTimeout") is None:
        task["KillTimeout"] = 5 * SEC
    if task.get("LogConfig") is None:
        task["LogConfig"] = {"MaxFiles": 10, "MaxFileSizeMB": 10, "Enabled": None, "Disabled": False}
    else:
        _fill(task["LogConfig"], {"MaxFiles": 10, "MaxFileSizeMB": 10, "Disabled": False})
    for art in task.get("Artifacts") or []:
        _fill(art, {"GetterMode": "any", "GetterInsecure": False, "GetterSource": ""})
        if art.get("RelativeDest") is None:
            art["RelativeDest"] = ("local/" + art["GetterSource"].rsplit("/", 1)[-1]
                                   if art["GetterMode"] == "file" else "local/")
    if task.get("Vault") is not None:
        vault = task["Vault"]
        _fill(vault, {"Env": True, "DisableFile": False, "Namespace": "", "ChangeMode": "restart",
                      "ChangeSignal": "SIGHUP", "AllowTokenExpiration": False})
        if not vault.get("Cluster"):
            vault["Cluster"] = "default"
    for tmpl in task.get("Templates") or []:
        _fill(tmpl, {"SourcePath": "", "DestPath": "", "EmbeddedTmpl": "", "ChangeMode": "restart"})
        if tmpl.get("ChangeSignal") is None:
            tmpl["ChangeSignal"] = "SIGHUP" if tmpl["ChangeMode"] == "signal" else ""
        else:
            tmpl["ChangeSignal"] = tmpl["ChangeSignal"].upper()
        _fill(tmpl, {"Once": False, "Splay": 5 * SEC, "Perms": "0644", "LeftDelim": "{{",
                     "RightDelim": "}}", "Envvars": False, "ErrMissingKey": False, "VaultGrace": 0})
    for svc in task.get("Services") or []:
        _canon_service(svc, task, group, job)
    for aff in task.get("Affinities") or []:
        _fill(aff, {"Weight": 50})
    for mount in task.get("VolumeMounts") or []:
        _fill(mount, {"PropagationMode": "private", "ReadOnly": False, "SELinuxLabel": ""})
    if task.get("RestartPolicy") is None:
        task["RestartPolicy"] = dict(group["RestartPolicy"])
    else:
        merged = dict(group["RestartPolicy"])
        merged.update({k: v for k, v in task["RestartPolicy"].items() if v is not None})
        task["RestartPolicy"] = merged


def _canon_service(svc, task, group, job):
    if not svc.get("Name"):
        svc["Name"] = (f"{job['Name']}-{group['Name']}-{task['Name']}" if task
                       else f"{job['Name']}-{group['Name']}")
    svc["AddressMode"] = svc.get("AddressMode") or "auto"
    svc["OnUpdate"] = svc.get("OnUpdate") or "require_healthy"
    svc["Provider"] = svc.get("Provider") or "consul"
    svc["Cluster"] = svc.get("Cluster") or "default"
    for key in ("Meta", "CanaryMeta", "TaggedAddresses"):
        if not svc.get(key):
            svc[key] = None
    weights = svc.get("Weights")
    if weights is not None:
        weights["Passing"] = weights.get("Passing") if (weights.get("Passing") or 0) > 0 else 1
        weights["Warning"] = weights.get("Warning") if (weights.get("Warning") or 0) > 0 else 1
    for check in svc.get("Checks") or []:
        restart = None
        if svc.get("CheckRestart") or check.get("CheckRestart"):
            restart = dict(svc.get("CheckRestart") or {})
            restart.update({k: v for k, v in (check.get("CheckRestart") or {}).items() if v not in (None, 0, False)})
            _fill(restart, {"Limit": 0, "Grace": SEC, "IgnoreWarnings": False})
        check["CheckRestart"] = restart
        for key in ("SuccessBeforePassing", "FailuresBeforeCritical", "FailuresBeforeWarning"):
            if (check.get(key) or 0) < 0:
                check[key] = 0
        if not check.get("OnUpdate"):
            check["OnUpdate"] = svc["OnUpdate"]


# -- validate (a subset of structs.Job.Validate and friends) -----------------------------------
JOB_TYPES = ("service", "batch", "system", "sysbatch")


def validate(job):
    """Validation errors as Nomad words them (``[]`` = valid)."""
    errs = []
    if not job.get("Region"):
        errs.append("Missing job region")
    if not job.get("ID"):
        errs.append("Missing job ID")
    elif " " in job["ID"]:
        errs.append("Job ID contains a space")
    elif "\x00" in job["ID"]:
        errs.append("Job ID contains a null character")
    if not job.get("Name"):
        errs.append("Missing job name")
    if not job.get("Namespace"):
        errs.append("Job must be in a namespace")
    if job.get("Type") not in JOB_TYPES:
        errs.append(f"Invalid job type: {_go_q(job.get('Type') or '')}")
    for dc in job.get("Datacenters") or []:
        if dc == "":
            errs.append("Job datacenter must be non-empty string")
    groups = job.get("TaskGroups") or []
    if not groups:
        errs.append("Missing job task groups")
    errs.extend(_constraint_errors(job.get("Constraints")))
    if job.get("Type") == "system":  # Job.Validate: affinities, then spreads (not validated otherwise here)
        if job.get("Affinities") is not None:
            errs.append("System jobs may not have an affinity block")
        if job.get("Spreads") is not None:
            errs.append("System jobs may not have a spread block")
    seen = {}
    for idx, group in enumerate(groups, 1):
        name = group.get("Name")
        if not name:
            errs.append(f"Job task group {idx} missing name")
        elif name in seen:
            errs.append(f"Job task group {idx} redefines '{name}' from group {seen[name]}")
        else:
            seen[name] = idx
        group_errs = _validate_group(group, job)
        if group_errs:
            errs.append(f"Task group {name} validation failed: " + _multierror(group_errs))
    # after the task groups (nomad/structs/structs.go Job.Validate)
    batch_only = '"batch" or "sysbatch" scheduler'
    if (job.get("Periodic") or {}).get("Enabled") and job.get("Type") not in ("batch", "sysbatch"):
        errs.append(f"Periodic can only be used with {batch_only}")
    if job.get("ParameterizedJob") is not None and job.get("Type") not in ("batch", "sysbatch"):
        errs.append(f"Parameterized job can only be used with {batch_only}")
    return errs


CONSTRAINT_NEEDS_RTARGET = ("=", "==", "is", "!=", "not", "<", "<=", ">", ">=")
CONSTRAINT_OTHERS = ("regexp", "version", "semver")  # their RTarget's syntax is not checked here


def _constraint_errors(constraints):
    """
    nomad/structs/structs.go Constraint.Validate, each failure as "Constraint <n> validation
    failed: <multierror>" (Job.Validate, TaskGroup.Validate). Not checked here: the syntax of a
    regexp/version/semver RTarget and of the LTarget interpolation (validateConstraintAttribute).
    """
    errs = []
    for idx, con in enumerate(constraints or [], 1):
        operand, ltarget, rtarget = con.get("Operand") or "", con.get("LTarget") or "", con.get("RTarget") or ""
        cerrs = ["Missing constraint operand"] if not operand else []
        if operand in ("set_contains_all", "set_contains_any", "set_contains"):
            if not rtarget:
                cerrs.append("Set contains constraint requires an RTarget")
        elif operand == "distinct_property":
            if rtarget and not re.fullmatch(r"[0-9]+", rtarget):
                cerrs.append(f"Failed to convert RTarget {_go_q(rtarget)} to uint64: strconv.ParseUint: "
                             f"parsing {_go_q(rtarget)}: invalid syntax")
            elif rtarget and int(rtarget) < 1:
                cerrs.append(f"Distinct Property must have an allowed count of 1 or greater: {int(rtarget)} < 1")
        elif operand in ("is_set", "is_not_set"):
            if rtarget:
                cerrs.append(f"Operator {_go_q(operand)} does not support an RTarget")
        elif operand in CONSTRAINT_NEEDS_RTARGET:
            if not rtarget:
                cerrs.append(f"Operator {_go_q(operand)} requires an RTarget")
        elif operand not in CONSTRAINT_OTHERS + ("distinct_hosts",):
            cerrs.append(f"Unknown constraint type {_go_q(operand)}")
        if operand != "distinct_hosts" and not ltarget:
            cerrs.append("no attribute provided but is required by operator")
        if cerrs:
            errs.append(f"Constraint {idx} validation failed: {_multierror(cerrs)}")
    return errs


def _validate_group(group, job):
    errs = []
    if (group.get("Count") or 0) < 0:
        errs.append("Task group count can't be negative")
    tasks = group.get("Tasks") or []
    if not tasks:
        errs.append("Missing tasks for task group")
    errs.extend(_constraint_errors(group.get("Constraints")))
    system = job.get("Type") == "system"  # TaskGroup.Validate: affinities before the restart policy
    if system and group.get("Affinities") is not None:
        errs.append("System jobs may not have an affinity block")
    restart = group.get("RestartPolicy")
    if restart is not None:
        errs.extend(_restart_errors(restart))
    else:
        errs.append(f"Task Group {group.get('Name')} should have a restart policy")
    if system and group.get("Spreads") is not None:  # ... and spreads after it
        errs.append("System jobs may not have a spread block")
    upd = group.get("Update")
    if upd:
        if upd.get("HealthCheck") not in ("checks", "task_states", "manual"):
            errs.append(f"Invalid health check given: {_go_q(upd.get('HealthCheck') or '')}")
        if (upd.get("MaxParallel") or 0) < 0:
            errs.append(f"Max parallel can not be less than zero: {upd['MaxParallel']:d} < 0")
        # UpdateStrategy.Validate (nomad/structs/structs.go)
        if (upd.get("Canary") or 0) < 0:
            errs.append(f"Canary count can not be less than zero: {upd['Canary']:d} < 0")
        if not upd.get("Canary") and upd.get("AutoPromote"):
            errs.append("Auto Promote requires a Canary count greater than zero")
        if (upd.get("MinHealthyTime") or 0) >= (upd.get("HealthyDeadline") or 0):
            errs.append(f"Minimum healthy time ({format_duration(upd.get('MinHealthyTime'))}) must be less than "
                        f"healthy deadline ({format_duration(upd.get('HealthyDeadline'))})")
        if upd.get("ProgressDeadline") and (upd.get("HealthyDeadline") or 0) >= upd["ProgressDeadline"]:
            errs.append(f"Healthy deadline ({format_duration(upd.get('HealthyDeadline'))}) must be less than "
                        f"progress deadline ({format_duration(upd.get('ProgressDeadline'))})")
    labels = set()
    for net in group.get("Networks") or []:
        for port in (net.get("DynamicPorts") or []) + (net.get("ReservedPorts") or []):
            if port.get("Label") in labels:
                errs.append(f"Port label {port.get('Label')} already in use")
            labels.add(port.get("Label"))
            if port.get("Value") and not 0 < port["Value"] <= 65535:
                errs.append(f"Port {port['Label']} has an invalid port value: {port['Value']}")
            if port.get("To") and not -1 <= port["To"] <= 65535:
                errs.append(f"Port {port['Label']} has an invalid port to value: {port['To']}")
    volumes = group.get("Volumes") or {}
    for vname, vol in volumes.items():
        if vol.get("Type") not in ("host", "csi"):
            errs.append(f"Volume {vname} has unrecognised type {vol.get('Type')}")
        elif not vol.get("Source"):
            errs.append(f"Volume {vname} has an empty source")
    task_names = set()
    leaders = 0
    for task in tasks:
        if task.get("Name") in task_names:
            errs.append(f"Task {task.get('Name')} redefined")
        task_names.add(task.get("Name"))
        leaders += 1 if task.get("Leader") else 0
    if leaders > 1:
        errs.append("Only one task may be marked as leader")
    for svc in group.get("Services") or []:
        errs.extend(_validate_service(svc, labels, group_level=True))
    errs.extend(_port_label_errors(group.get("Services") or [], labels))
    for task in tasks:
        terrs = _validate_task(task, labels, volumes)
        if terrs:
            errs.append(f"Task {task.get('Name')} validation failed: " + _multierror(terrs))
    return errs


RESTART_MIN_INTERVAL = 5 * SEC  # nomad/structs/structs.go RestartPolicyMinInterval


def _restart_errors(restart):
    """nomad/structs/structs.go RestartPolicy.Validate, word for word (Go's %q and %v)."""
    errs = []
    mode = restart.get("Mode") or ""
    attempts = int(restart.get("Attempts") or 0)
    interval = int(restart.get("Interval") or 0)
    delay = int(restart.get("Delay") or 0)
    if mode not in ("delay", "fail"):
        errs.append(f"Unsupported restart mode: {_go_q(mode)}")
    if attempts == 0 and mode != "fail":
        errs.append(f"Restart policy {_go_q(mode)} with {attempts} attempts is ambiguous")
    if interval < RESTART_MIN_INTERVAL:
        errs.append(f"Interval can not be less than {format_duration(RESTART_MIN_INTERVAL)} "
                    f"(got {format_duration(interval)})")
    if attempts * delay > interval:
        errs.append(f"Nomad can't restart the TaskGroup {attempts} times in an interval of "
                    f"{format_duration(interval)} with a delay of {format_duration(delay)}")
    return errs


def _go_q(text):
    """Go's %q of a string (JSON's escaping is close enough for the texts used here)."""
    return json.dumps(str(text), ensure_ascii=False)


go_q = _go_q


def _validate_task(task, labels, volumes):
    errs = []
    if not task.get("Name"):
        errs.append("Missing task name")
    elif "/" in task["Name"]:
        errs.append("Task name cannot include slashes")
    if not task.get("Driver"):
        errs.append("Missing task driver")
    res = task.get("Resources") or {}
    if (res.get("CPU") or 0) < 1 and not res.get("Cores"):
        errs.append(f"minimum CPU value is 1; got {res.get('CPU')}")
    if (res.get("MemoryMB") or 0) < 10:
        errs.append(f"minimum MemoryMB value is 10; got {res.get('MemoryMB')}")
    if res.get("MemoryMaxMB") and res["MemoryMaxMB"] < res.get("MemoryMB", 0):
        errs.append(f"MemoryMaxMB value ({res['MemoryMaxMB']}) should be larger than MemoryMB value "
                    f"({res.get('MemoryMB')})")
    lifecycle = task.get("Lifecycle")
    if lifecycle and lifecycle.get("Hook") not in ("prestart", "poststart", "poststop"):
        errs.append(f"invalid hook: {lifecycle.get('Hook')}")
    for idx, tmpl in enumerate(task.get("Templates") or [], 1):
        terrs = []
        if not tmpl.get("SourcePath") and not tmpl.get("EmbeddedTmpl"):
            terrs.append("Must specify a source path or have an embedded template")
        if not tmpl.get("DestPath"):
            terrs.append("Must specify a destination for the template")
        if tmpl.get("ChangeMode") not in ("noop", "restart", "signal", "script"):
            terrs.append(f"Invalid change mode ({tmpl.get('ChangeMode')})")
        if tmpl.get("ChangeMode") == "signal" and not tmpl.get("ChangeSignal"):
            terrs.append("Must specify signal value when change mode is signal")
        if tmpl.get("Envvars") and tmpl.get("ChangeMode") == "signal":
            terrs.append("cannot use signals with env var templates")
        if terrs:
            errs.append(f"Template {idx} validation failed: " + _multierror(terrs))
    for mount in task.get("VolumeMounts") or []:
        if mount.get("Volume") not in volumes:
            errs.append(f"Volume Mount referenced a volume that does not exist: {mount.get('Volume')!r}"
                        if mount.get("Volume") else "Volume Mount (0) references an empty volume")
    task_labels = set(labels)
    for net in (task.get("Resources") or {}).get("Networks") or []:
        for port in (net.get("DynamicPorts") or []) + (net.get("ReservedPorts") or []):
            task_labels.add(port.get("Label"))
    for svc in task.get("Services") or []:
        errs.extend(_validate_service(svc, task_labels, group_level=False))
    errs.extend(_port_label_errors(task.get("Services") or [], task_labels))
    return errs


def _validate_service(svc, labels, group_level):
    """Service and check errors except unknown port labels (see :func:`_port_label_errors`)."""
    errs = []
    name = svc.get("Name") or ""
    plain = re.sub(r"\$\{[^}]*\}", "x", name)
    if not re.fullmatch(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?", plain):
        errs.append(f"Service name must be valid per RFC 1123 and can contain only alphanumeric "
                    f"characters or dashes and must be no longer than 63 characters: {name!r}")
    for check in svc.get("Checks") or []:
        ctype = check.get("Type")
        cname = check.get("Name") or f'service: "{name}" check'
        if ctype not in ("http", "tcp", "script", "grpc"):
            errs.append(f"check {cname!r}: invalid type ({ctype})")
            continue
        if not check.get("Interval") or check["Interval"] < SEC:
            errs.append(f"check {cname!r}: interval ({format_duration(check.get('Interval'))}) cannot be less than 1s")
        if not check.get("Timeout") or check["Timeout"] < SEC:
            errs.append(
                f"check {cname!r}: timeout ({format_duration(check.get('Timeout'))}) is too low; "
                "must be greater than 1s"
            )
        if ctype == "http" and not check.get("Path"):
            errs.append(f"check {cname!r}: http type must have http path")
        if ctype in ("http", "tcp") and not (check.get("PortLabel") or svc.get("PortLabel")):
            errs.append(f"check {cname!r}: {ctype} check requires a port")
    return errs


def _port_label_errors(services, labels):
    """structs.Task.validateServices: every referenced port label must exist."""
    wanted = {}
    for svc in services:
        ports = [svc.get("PortLabel")] + [c.get("PortLabel") for c in svc.get("Checks") or []]
        for port in ports:
            if port and not str(port).isdigit():
                wanted.setdefault(port, set()).add(svc.get("Name"))
    return [f'port label "{port}" referenced by services {", ".join(sorted(names))} does not exist'
            for port, names in sorted(wanted.items()) if port not in labels]


def warnings(job, shutdown_delay=True):
    """
    ``Job.Warnings`` (nomad/structs/structs.go), as jobValidate unpacks it: per group
    ``Group "<g>" has warnings: <multierror>`` (TaskGroup.Warnings: update max_parallel above
    the count, mbits, each task's Task.Warnings: IOPS, task networks), then - Nomad 2.0.1+
    (generateServiceShutdownDelayWarnings, hashicorp/nomad#27782) - one per service without
    a shutdown_delay to cover it, then auto_promote all-or-none.
    """
    out = []
    has_auto_promote, all_auto_promote = False, True
    for group in job.get("TaskGroups") or []:
        errs = []
        upd = group.get("Update")
        count = group.get("Count") or 0
        if upd and count > 1 and (upd.get("MaxParallel") or 0) > count:
            errs.append(f"Update max parallel count is greater than task group count ({upd['MaxParallel']} > "
                        f"{count}). A destructive change would result in the simultaneous replacement of all "
                        "allocations.")
        networks = group.get("Networks") or []
        if networks and (networks[0].get("MBits") or 0) > 0:
            errs.append("mbits has been deprecated as of Nomad 0.12.0. Please remove mbits from the network block")
        for task in group.get("Tasks") or []:
            task_errs = []
            resources = task.get("Resources") or {}
            if resources.get("IOPS"):
                task_errs.append("IOPS has been deprecated as of Nomad 0.9.0. Please remove IOPS from resource block.")
            if resources.get("Networks"):
                task_errs.append("task network resources have been deprecated as of Nomad 0.12.0. Please "
                                 "configure networking via group network block.")
            if task_errs:
                errs.append(f"Task {_go_q(task.get('Name') or '')} has warnings: {_multierror(task_errs)}")
        if errs:
            out.append(f"Group {_go_q(group.get('Name') or '')} has warnings: {_multierror(errs)}")
        if upd:
            has_auto_promote = has_auto_promote or bool(upd.get("AutoPromote"))
            all_auto_promote = all_auto_promote and (not upd.get("Canary") or bool(upd.get("AutoPromote")))
    if shutdown_delay:
        for group in job.get("TaskGroups") or []:
            out.extend(_shutdown_delay_warnings(group))
    if has_auto_promote and not all_auto_promote:
        out.append("auto_promote must be true for all groups to enable automatic promotion")
    return out


def _shutdown_delay_warnings(group):
    """nomad/structs/structs.go generateTaskGroupServiceShutdownDelayWarnings."""
    out = []
    referenced, unscoped = set(), False
    group_delay = (group.get("ShutdownDelay") or 0) > 0
    for svc in group.get("Services") or []:
        if svc.get("TaskName"):
            referenced.add(svc["TaskName"])
            continue
        sidecar = (svc.get("Connect") or {}).get("SidecarTask") if isinstance(svc.get("Connect"), dict) else None
        if sidecar is not None:
            if sidecar.get("ShutdownDelay") is None:
                out.append(f"service {_go_q(svc.get('Name') or '')} defines a sidecar task in Consul Connect "
                           "definition, but the task has no shutdown_delay set")
            continue
        unscoped = True
    any_task_delay = False
    name = _go_q(group.get("Name") or "")
    for task in group.get("Tasks") or []:
        delay = task.get("ShutdownDelay") or 0
        if task.get("Name") in referenced and not delay:
            out.append(f"group {name} references task {_go_q(task['Name'])} in a service definition, but the "
                       "task has no shutdown_delay set")
        if delay > 0:
            any_task_delay = True
        elif task.get("Services"):
            out.append(f"task {_go_q(task.get('Name') or '')} in group {name} defines services, but has no "
                       "shutdown_delay set")
    if unscoped and not group_delay and not any_task_delay:
        out.append(f"group {name} defines services, but neither the group nor any of its tasks have "
                   "shutdown_delay set")
    return out


def _multierror(errs):
    """hashicorp/go-multierror's format."""
    if len(errs) == 1:
        return "1 error occurred:\n\t* " + errs[0] + "\n\n"
    return f"{len(errs)} errors occurred:\n" + "".join(f"\t* {e}\n" for e in errs) + "\n"


def multierror(errs):
    return _multierror(errs)


def merge_warnings(warnings):
    """helper/warning.go MergeMultierrorWarnings: "" or "N warning(s):\n\n* ..." ."""
    if not warnings:
        return ""
    head = "1 warning:\n" if len(warnings) == 1 else f"{len(warnings)} warnings:\n"
    return head + "".join(f"\n* {str(w).strip()}" for w in warnings)


# -- plan diff (nomad/structs/diff.go on the JSON form) -------------------------------------
NONE, ADDED, DELETED, EDITED = "None", "Added", "Deleted", "Edited"
MAP_FIELDS = frozenset({"Meta", "Env", "CanaryMeta", "TaggedAddresses", "GetterOptions", "GetterHeaders"})
JOB_FILTER = ("ID", "Status", "StatusDescription", "Version", "Stable", "CreateIndex", "ModifyIndex",
              "JobModifyIndex", "Update", "SubmitTime", "NomadTokenID", "VaultToken")
# nomad/structs/structs.go Job.SpecChanged copies only these from the old job before comparing:
# unlike the plan diff it sees job-level Update and NomadTokenID (the accessor of the token that
# registered), so the same spec registered with another token is a new version
# (hashicorp/nomad#26810; fixed after 2.0.x by #28519).
SPEC_IGNORE = ("Status", "StatusDescription", "Stable", "Version", "CreateIndex", "ModifyIndex",
               "JobModifyIndex", "SubmitTime")


def _scalar(val):
    if val is None:
        return ""
    if isinstance(val, bool):
        return "true" if val else "false"
    if isinstance(val, float) and val.is_integer():
        return str(int(val))
    return str(val)


def flat_primitive(obj, exclude=()):
    """``flatmap.Flatten(obj, filter, true)``: scalar fields and string maps (``Meta[k]``)."""
    out = {}
    if obj is None:
        return out
    for key, val in obj.items():
        if key in exclude or key.startswith("__"):
            continue
        if key in MAP_FIELDS and isinstance(val, dict):
            for mkey, mval in val.items():
                out[f"{key}[{mkey}]"] = _scalar(mval)
        elif not isinstance(val, (dict, list)):
            out[key] = _scalar(val)
    return out


def flat_full(obj, prefix=""):
    """``flatmap.Flatten(obj, nil, false)`` for free-form maps (driver config)."""
    out = {}
    if isinstance(obj, dict):
        for key, val in obj.items():
            out.update(flat_full(val, f"{prefix}[{key}]" if prefix else str(key)))
    elif isinstance(obj, list):
        for idx, val in enumerate(obj):
            out.update(flat_full(val, f"{prefix}[{idx}]"))
    else:
        out[prefix] = "nil" if obj is None else _scalar(obj)
    return out


def _field(old, new, name):
    if old == new:
        return None
    if old == "":
        return {"Type": ADDED, "Name": name, "Old": "", "New": new, "Annotations": None}
    if new == "":
        return {"Type": DELETED, "Name": name, "Old": old, "New": "", "Annotations": None}
    return {"Type": EDITED, "Name": name, "Old": old, "New": new, "Annotations": None}


def field_diffs(old, new):
    old, new = old or {}, new or {}
    out = [d for d in (_field(old.get(k, ""), new.get(k, ""), k) for k in set(old) | set(new)) if d]
    return sorted(out, key=lambda d: d["Name"])


def _obj(name, fields, objects=None, kind=None):
    objects = [o for o in (objects or []) if o]
    if kind is None:
        types = {f["Type"] for f in fields} | {o["Type"] for o in objects}
        if not types:
            return None
        if EDITED in types or (ADDED in types and DELETED in types):
            kind = EDITED
        elif ADDED in types:
            kind = ADDED
        elif DELETED in types:
            kind = DELETED
        else:
            return None
    return {
        "Type": kind,
        "Name": name,
        "Fields": fields or None,
        "Objects": sorted(objects, key=lambda o: o["Name"]) or None,
    }


def primitive_object(old, new, name, exclude=()):
    if old is None and new is None:
        return None
    return _obj(name, field_diffs(flat_primitive(old, exclude), flat_primitive(new, exclude)))


def string_set(old, new, name):
    old, new = set(old or []), set(new or [])
    if old == new:
        return None
    fields = [_field(v, "", name) for v in old - new] + [_field("", v, name) for v in new - old]
    return _obj(name, sorted(fields, key=lambda f: (f["Old"], f["New"])))


def _hash(obj):
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def object_set(old, new, name, key=None, inner=None, exclude=()):
    """Set diff of lists of objects, matched by ``key`` (default: content hash)."""
    key = key or _hash
    inner = inner or (lambda a, b: primitive_object(a, b, name, exclude))
    old_map = {key(o): o for o in old or []}
    new_map = {key(o): o for o in new or []}
    out = []
    for k in list(old_map) + [k for k in new_map if k not in old_map]:
        diff = inner(old_map.get(k), new_map.get(k))
        if diff:
            out.append(diff)
    return out


def _config(old, new):
    if old == new:
        return None
    kind = ADDED if not old else DELETED if not new else EDITED
    return _obj("Config", field_diffs(flat_full(old or {}), flat_full(new or {})), kind=kind)


def _ports(old, new, name):
    return object_set(old, new, name, key=lambda p: p.get("Label"))


def _network(old, new):
    if old == new:
        return None
    exclude = ("DynamicPorts", "ReservedPorts", "DNS", "CNI")
    objects = _ports((old or {}).get("ReservedPorts"), (new or {}).get("ReservedPorts"), "Static Port")
    objects += _ports((old or {}).get("DynamicPorts"), (new or {}).get("DynamicPorts"), "Dynamic Port")
    objects.append(primitive_object((old or {}).get("DNS"), (new or {}).get("DNS"), "DNS"))
    kind = ADDED if old is None else DELETED if new is None else EDITED
    return _obj("Network", field_diffs(flat_primitive(old, exclude), flat_primitive(new, exclude)),
                objects, kind=kind)


def _networks(old, new):
    old, new = old or [], new or []
    out = []
    for idx in range(max(len(old), len(new))):
        diff = _network(old[idx] if idx < len(old) else None, new[idx] if idx < len(new) else None)
        if diff:
            out.append(diff)
    return out


def _check(old, new):
    if old == new:
        return None
    exclude = ("Header", "CheckRestart", "Args")
    objects = [string_set((old or {}).get("Args"), (new or {}).get("Args"), "Args"),
               primitive_object((old or {}).get("CheckRestart"), (new or {}).get("CheckRestart"), "CheckRestart")]
    kind = ADDED if old is None else DELETED if new is None else EDITED
    fields = field_diffs(flat_primitive(old, exclude), flat_primitive(new, exclude))
    if old and new and (old.get("Header") != new.get("Header")):
        fields += field_diffs(
            flat_full(old.get("Header") or {}, "Header"), flat_full(new.get("Header") or {}, "Header")
        )
    return _obj("Check", fields, objects, kind=kind)


def _service(old, new):
    if old == new:
        return None
    exclude = ("Tags", "CanaryTags", "Checks", "CheckRestart", "Connect", "Identity", "Weights")
    objects = [string_set((old or {}).get("Tags"), (new or {}).get("Tags"), "Tags"),
               string_set((old or {}).get("CanaryTags"), (new or {}).get("CanaryTags"), "CanaryTags"),
               primitive_object((old or {}).get("CheckRestart"), (new or {}).get("CheckRestart"), "CheckRestart"),
               primitive_object((old or {}).get("Weights"), (new or {}).get("Weights"), "Weights")]
    objects += object_set((old or {}).get("Checks"), (new or {}).get("Checks"), "Check",
                          key=lambda c: c.get("Name") or _hash(c), inner=_check)
    if (old or {}).get("Connect") != (new or {}).get("Connect"):
        objects.append(_obj("ConsulConnect", field_diffs(flat_full((old or {}).get("Connect") or {}),
                                                         flat_full((new or {}).get("Connect") or {}))))
    kind = ADDED if old is None else DELETED if new is None else EDITED
    return _obj("Service", field_diffs(flat_primitive(old, exclude), flat_primitive(new, exclude)),
                objects, kind=kind)


def _services(old, new):
    return object_set(old, new, "Service", key=lambda s: (s.get("Name"), s.get("PortLabel")), inner=_service)


def _resources(old, new):
    if old == new:
        return None
    exclude = ("Networks", "Devices", "NUMA")
    objects = _networks((old or {}).get("Networks"), (new or {}).get("Networks"))
    return _obj("Resources", field_diffs(flat_primitive(old, exclude), flat_primitive(new, exclude)), objects)


def _template(old, new):
    if old == new:
        return None
    exclude = ("ChangeScript", "Wait")
    objects = [primitive_object((old or {}).get("ChangeScript"), (new or {}).get("ChangeScript"), "ChangeScript"),
               primitive_object((old or {}).get("Wait"), (new or {}).get("Wait"), "Template")]
    kind = ADDED if old is None else DELETED if new is None else EDITED
    return _obj("Template", field_diffs(flat_primitive(old, exclude), flat_primitive(new, exclude)),
                objects, kind=kind)


def _vault(old, new):
    if old == new:
        return None
    objects = [string_set((old or {}).get("Policies"), (new or {}).get("Policies"), "Policies")]
    return _obj("Vault", field_diffs(flat_primitive(old), flat_primitive(new)), objects)


def task_diff(old, new):
    kind = ADDED if old is None else DELETED if new is None else (EDITED if old != new else NONE)
    o, n = old or {}, new or {}
    fields = field_diffs(flat_primitive(old, ("Name", "Config")), flat_primitive(new, ("Name", "Config")))
    objects = object_set(o.get("Constraints"), n.get("Constraints"), "Constraint")
    objects += object_set(o.get("Affinities"), n.get("Affinities"), "Affinity")
    objects += [_config(o.get("Config"), n.get("Config")), _resources(o.get("Resources"), n.get("Resources")),
                primitive_object(o.get("LogConfig"), n.get("LogConfig"), "LogConfig"),
                primitive_object(o.get("DispatchPayload"), n.get("DispatchPayload"), "DispatchPayload"),
                primitive_object(o.get("Lifecycle"), n.get("Lifecycle"), "Lifecycle"),
                _vault(o.get("Vault"), n.get("Vault")),
                primitive_object(o.get("Consul"), n.get("Consul"), "Consul")]
    objects += object_set(o.get("Artifacts"), n.get("Artifacts"), "Artifact")
    objects += _services(o.get("Services"), n.get("Services"))
    objects += object_set(o.get("Templates"), n.get("Templates"), "Template",
                          key=lambda t: t.get("DestPath"), inner=_template)
    objects += object_set(o.get("VolumeMounts"), n.get("VolumeMounts"), "VolumeMount",
                          key=lambda m: (m.get("Volume"), m.get("Destination")))
    objects = sorted([x for x in objects if x], key=lambda x: x["Name"])
    return {"Type": kind, "Name": n.get("Name") or o.get("Name"), "Fields": fields or None,
            "Objects": objects or None, "Annotations": None}


def group_diff(old, new):
    kind = ADDED if old is None else DELETED if new is None else (EDITED if old != new else NONE)
    o, n = old or {}, new or {}
    fields = field_diffs(flat_primitive(old, ("Name",)), flat_primitive(new, ("Name",)))
    objects = object_set(o.get("Constraints"), n.get("Constraints"), "Constraint")
    objects += object_set(o.get("Affinities"), n.get("Affinities"), "Affinity")
    for key, name, exclude in (("RestartPolicy", "RestartPolicy", ()), ("Migrate", "Migrate", ()),
                               ("ReschedulePolicy", "ReschedulePolicy", ()),
                               ("EphemeralDisk", "EphemeralDisk", ()), ("Consul", "Consul", ()),
                               ("Update", "Update", ("Stagger",)), ("Disconnect", "Disconnect", ())):
        objects.append(primitive_object(o.get(key), n.get(key), name, exclude))
    objects += _networks(o.get("Networks"), n.get("Networks"))
    objects += _services(o.get("Services"), n.get("Services"))
    old_vols, new_vols = o.get("Volumes") or {}, n.get("Volumes") or {}
    for vname in list(old_vols) + [v for v in new_vols if v not in old_vols]:
        objects.append(primitive_object(old_vols.get(vname), new_vols.get(vname), "Volume"))
    objects = sorted([x for x in objects if x], key=lambda x: x["Name"])
    old_tasks = {t["Name"]: t for t in o.get("Tasks") or []}
    new_tasks = {t["Name"]: t for t in n.get("Tasks") or []}
    tasks = []
    for tname in sorted(set(old_tasks) | set(new_tasks)):
        tdiff = task_diff(old_tasks.get(tname), new_tasks.get(tname))
        tasks.append(tdiff)
    return {"Type": kind, "Name": n.get("Name") or o.get("Name"), "Fields": fields or None,
            "Objects": objects or None, "Tasks": tasks or None, "Updates": None}


def job_diff(old, new):
    """``structs.Job.Diff(old, new, contextual=false)`` on JSON jobs (old may be None)."""
    o, n = old or {}, new or {}
    exclude = JOB_FILTER + ("Datacenters",)
    fields = field_diffs(flat_primitive(old, exclude), flat_primitive(new, exclude))
    objects = [string_set(o.get("Datacenters"), n.get("Datacenters"), "Datacenters")]
    objects += object_set(o.get("Constraints"), n.get("Constraints"), "Constraint")
    objects += object_set(o.get("Affinities"), n.get("Affinities"), "Affinity")
    objects += object_set(o.get("Spreads"), n.get("Spreads"), "Spread")
    objects.append(primitive_object(o.get("Periodic"), n.get("Periodic"), "Periodic"))
    objects.append(primitive_object(o.get("ParameterizedJob"), n.get("ParameterizedJob"), "ParameterizedJob"))
    objects = sorted([x for x in objects if x], key=lambda x: x["Name"])
    old_groups = {g["Name"]: g for g in o.get("TaskGroups") or []}
    new_groups = {g["Name"]: g for g in n.get("TaskGroups") or []}
    groups = [group_diff(old_groups.get(name), new_groups.get(name))
              for name in sorted(set(old_groups) | set(new_groups))]
    if old is None:
        kind = ADDED
    elif new is None:
        kind = DELETED
    elif fields or objects or any(g["Type"] != NONE for g in groups):
        kind = EDITED
    else:
        kind = NONE
    return {"Type": kind, "ID": n.get("ID") or o.get("ID"), "Fields": fields or None,
            "Objects": objects or None, "TaskGroups": groups or None}


def spec_changed(old, new):
    """``Job.SpecChanged``: anything but bookkeeping fields differs."""
    strip = lambda j: {k: v for k, v in (j or {}).items() if k not in SPEC_IGNORE}  # noqa: E731
    return strip(old) != strip(new) or (old or {}).get("Stop") != (new or {}).get("Stop")


def annotate(diff, desired):
    """scheduler/annotate.go: group update counts, count changes, task annotations."""
    names = {"Ignore": "ignore", "Place": "create", "Migrate": "migrate", "Stop": "destroy",
             "Canary": "canary", "InPlaceUpdate": "in-place update",
             "DestructiveUpdate": "create/destroy update"}
    for tg in diff.get("TaskGroups") or []:
        upd = (desired or {}).get(tg["Name"])
        if upd:
            tg["Updates"] = {names[k]: v for k, v in upd.items() if k in names and v} or None
        for field in tg.get("Fields") or []:
            if field["Name"] == "Count":
                old, new = int(field["Old"] or 0), int(field["New"] or 0)
                if old < new:
                    field["Annotations"] = ["forces create"]
                elif new < old:
                    field["Annotations"] = ["forces destroy"]
        for task in tg.get("Tasks") or []:
            if task["Type"] == NONE:
                continue
            if tg["Type"] in (ADDED, DELETED) and task["Type"] in (ADDED, DELETED):
                task["Annotations"] = ["forces create" if task["Type"] == ADDED else "forces destroy"]
                continue
            destructive = any(f["Name"] != "KillTimeout" for f in task.get("Fields") or [])
            if not destructive:
                for obj in task.get("Objects") or []:
                    if obj["Name"] in ("Service", "Constraint", "Affinity", "Spread"):
                        continue
                    if obj["Name"] == "LogConfig" and not any(
                            f["Name"] == "Disabled" for f in obj.get("Fields") or []):
                        continue
                    destructive = True
                    break
            task["Annotations"] = ["forces create/destroy update" if destructive else "forces in-place update"]
    return diff


def task_group_update_kind(old_group, new_group):
    """How the scheduler updates existing allocations: ignore, in-place or destructive."""
    if old_group == new_group:
        return "ignore"
    diff = group_diff(old_group, new_group)
    annotate({"TaskGroups": [diff]}, {})
    if any("forces create/destroy update" in (t.get("Annotations") or []) for t in diff.get("Tasks") or []):
        return "destructive"
    # group-level changes (networks, volumes, count aside) are destructive too
    for obj in diff.get("Objects") or []:
        if obj["Name"] in ("Network", "Volume", "EphemeralDisk"):
            return "destructive"
    return "inplace"
