"""The simulator's jobspec handling: strict HCL2 decoding with Nomad's diagnostics,
canonicalization, validation and the plan diff."""

import copy
import os

import pytest

from lab.sim import nomad_jobspec as js

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
USER_JOB = os.path.join(REPO, "tests", "fixtures", "bionicgpt-user-job.nomad.hcl")

JOB = """
job "web" {
  datacenters = ["dc1"]

  constraint {
    attribute = "${meta.location}"
    value     = "local"
  }

  group "g" {
    network {
      port "http" {
        to = 8080
      }
      port "admin" {
        static = 9000
      }
    }

    service {
      name = "web"
      port = "http"
      tags = ["a", "b"]

      check {
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "t" {
      driver = "docker"

      config {
        image = "nginx:1.27"
        ports = ["http"]
        args  = ["--upstream=http://${NOMAD_ADDR_http}"]
        mount {
          type   = "bind"
          source = "local/x"
        }
      }

      env {
        A = "1"
      }

      template {
        data        = <<-EOT
          KEY="{{ with secret "secret/data/x" }}{{ .Data.data.k }}{{ end }}"
          EOT
        destination = "secrets/x.env"
        env         = true
      }
    }
  }
}
"""


def parse(text=JOB):
    return js.parse(text)


def diag(text):
    with pytest.raises(js.JobspecError) as exc:
        js.parse(text)
    return str(exc.value)


def test_parse_gives_the_api_job_shape():
    job = parse()
    assert job["ID"] == job["Name"] == "web"
    # jobspec2/hcl_conversions.go decodeConstraint: no operator is "="
    assert job["Constraints"] == [{"LTarget": "${meta.location}", "RTarget": "local", "Operand": "="}]
    group = job["TaskGroups"][0]
    net = group["Networks"][0]
    assert [p["Label"] for p in net["DynamicPorts"]] == ["http"]
    assert net["ReservedPorts"] == [{"Label": "admin", "Value": 9000, "To": 0, "HostNetwork": "",
                                     "IgnoreCollision": False}]
    task = group["Tasks"][0]
    assert task["Config"] == {"image": "nginx:1.27", "ports": ["http"],
                              "args": ["--upstream=http://${NOMAD_ADDR_http}"],
                              "mount": [{"type": "bind", "source": "local/x"}]}
    assert task["Env"] == {"A": "1"}
    tmpl = task["Templates"][0]
    assert tmpl["EmbeddedTmpl"] == 'KEY="{{ with secret "secret/data/x" }}{{ .Data.data.k }}{{ end }}"\n'
    assert tmpl["Envvars"] is True and tmpl["ChangeMode"] == "restart" and tmpl["Splay"] == 5_000_000_000
    check = group["Services"][0]["Checks"][0]
    assert check["Interval"] == 10_000_000_000 and check["Timeout"] == 2_000_000_000
    assert job["Priority"] is None  # not canonicalized yet


def test_users_original_file_is_rejected_at_depends_on():
    with open(USER_JOB, encoding="utf-8") as fh:
        text = fh.read()
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if ln.strip().startswith("depends_on"))
    message = diag(text)
    assert message == (f'input.hcl:{line},5-15: Unsupported argument; An argument named "depends_on" '
                       "is not expected here.")


def test_users_file_without_depends_on_parses_but_port_map_is_driver_config():
    with open(USER_JOB, encoding="utf-8") as fh:
        text = fh.read().replace('depends_on = ["database"]', "")
    job = js.canonicalize(js.parse(text))
    task = job["TaskGroups"][0]["Tasks"][0]
    assert task["Config"]["port_map"] == [{"db": 5432}]  # only the docker driver rejects it, at start
    assert js.validate(job) == []
    assert any("task network resources have been deprecated" in w for w in js.warnings(job))


@pytest.mark.parametrize("snippet,expected", [
    ('  bogus = 1\n', 'input.hcl:2,3-8: Unsupported argument; An argument named "bogus" is not expected here.'),
    ('  meta = {}\n', 'An argument named "meta" is not expected here. Did you mean to define a block of type "meta"?'),
    ('  priority {\n  }\n', 'Unsupported block type; Blocks of type "priority" are not expected here. Did you mean '
                            'to define argument "priority"?'),
    ('  update {\n  }\n  update {\n  }\n', "input.hcl:4,3-9: Duplicate update block; Only one update block is "
                                           "allowed. Another was defined at input.hcl:2,3-9."),
    ('  group {\n  }\n', "Missing name for group; All group blocks must have 1 labels (name)."),
    ('  priority = "high"\n', 'Incorrect attribute value type; Inappropriate value for attribute "priority": '
                              "number required."),
    ('  priority = 1\n  priority = 2\n', 'Attribute redefined; The argument "priority" was already set at '
                                         "input.hcl:2,3-11."),
    ('  group "g" {\n    task "t" {\n      lifecycle {\n      }\n    }\n  }\n',
     'Missing required argument; The argument "hook" is required'),
    ('  group "g" {\n    update {\n      min_healthy_time = "10 seconds"\n    }\n  }\n',
     'Unsuitable duration value; time: invalid duration "10 seconds"'),
    ('  region = var.region\n', 'Unknown variable; There is no variable named "var".'),
])
def test_diagnostics(snippet, expected):
    assert expected in diag('job "x" {\n' + snippet + "}\n")


def test_several_diagnostics_are_counted():
    message = diag('job "x" {\n  a = 1\n  b = 2\n}\n')
    assert message.endswith(", and 1 other diagnostic(s)")


def test_syntax_error_names_the_line():
    message = diag('job "x" {\n  group "g" {\n    count = \n  }\n}\n')
    assert message.startswith("input.hcl:3,")


def test_canonicalize_matches_nomad_defaults_and_is_idempotent():
    job = js.canonicalize(parse())
    assert (job["Priority"], job["Region"], job["Namespace"], job["Type"]) == (50, "global", "default", "service")
    assert job["Update"]["MinHealthyTime"] == 10_000_000_000 and job["Update"]["AutoRevert"] is False
    group = job["TaskGroups"][0]
    assert group["Count"] == 1 and group["RestartPolicy"]["Attempts"] == 2
    assert group["ReschedulePolicy"]["DelayFunction"] == "exponential"
    assert group["Update"]["ProgressDeadline"] == 600_000_000_000
    task = group["Tasks"][0]
    assert task["Resources"]["CPU"] == 100 and task["Resources"]["MemoryMB"] == 300
    assert task["RestartPolicy"] == group["RestartPolicy"]
    assert group["Services"][0]["Provider"] == "consul"
    assert js.canonicalize(copy.deepcopy(job)) == job


def test_validate_finds_what_nomad_refuses():
    job = js.canonicalize(parse())
    job["TaskGroups"][0]["Services"][0]["PortLabel"] = "nope"
    job["TaskGroups"][0]["Tasks"][0]["Resources"]["MemoryMB"] = 5
    errors = "\n".join(js.validate(job))
    assert 'port label "nope" referenced by services web does not exist' in errors
    assert "minimum MemoryMB value is 10; got 5" in errors


def test_diff_none_edited_and_annotations():
    old = js.canonicalize(parse())
    assert js.job_diff(old, copy.deepcopy(old))["Type"] == "None"
    assert not js.spec_changed(old, dict(old, Version=3, JobModifyIndex=99, Stable=True))
    new = copy.deepcopy(old)
    new["TaskGroups"][0]["Tasks"][0]["Config"]["image"] = "nginx:1.28"
    new["TaskGroups"][0]["Services"][0]["Tags"] = ["a", "c"]
    new["TaskGroups"][0]["Count"] = 2
    diff = js.annotate(js.job_diff(old, new), {"g": {"Place": 1, "DestructiveUpdate": 1}})
    assert diff["Type"] == "Edited"
    group = diff["TaskGroups"][0]
    assert group["Updates"] == {"create": 1, "create/destroy update": 1}
    count = next(f for f in group["Fields"] if f["Name"] == "Count")
    assert (count["Old"], count["New"], count["Annotations"]) == ("1", "2", ["forces create"])
    service = next(o for o in group["Objects"] if o["Name"] == "Service")
    tags = next(o for o in service["Objects"] if o["Name"] == "Tags")
    assert service["Type"] == "Edited" and tags["Type"] == "Edited"
    assert sorted((f["Old"], f["New"]) for f in tags["Fields"]) == [("", "c"), ("b", "")]
    task = group["Tasks"][0]
    config = next(o for o in task["Objects"] if o["Name"] == "Config")
    assert config["Fields"] == [{"Type": "Edited", "Name": "image", "Old": "nginx:1.27", "New": "nginx:1.28",
                                 "Annotations": None}]
    assert task["Annotations"] == ["forces create/destroy update"]
    # a service-only change is an in-place update
    inplace = copy.deepcopy(old)
    inplace["TaskGroups"][0]["Tasks"][0]["Services"] = [copy.deepcopy(old["TaskGroups"][0]["Services"][0])]
    assert js.task_group_update_kind(old["TaskGroups"][0], inplace["TaskGroups"][0]) == "inplace"
    assert js.task_group_update_kind(old["TaskGroups"][0], new["TaskGroups"][0]) == "destructive"


def test_durations():
    assert js.parse_duration("1h30m") == 5_400_000_000_000
    assert js.parse_duration("1.5s") == 1_500_000_000
    assert js.format_duration(1_800_000_000_000) == "30m0s"
    assert js.format_duration(10_000_000_000) == "10s"
    with pytest.raises(ValueError, match="missing unit"):
        js.parse_duration("10")
