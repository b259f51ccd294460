# Extracts the TestCase table of llama.cpp tests/test-chat-template.cpp into JSON.
import json, re, sys
src = open(sys.argv[1], encoding="utf-8").read()
start = src.index("std::vector<TestCase> test_cases {")
i = src.index("{", start) + 1

def skip_ws(i):
    while True:
        while src[i].isspace(): i += 1
        if src.startswith("//", i): i = src.index("\n", i); continue
        if src.startswith("/*", i):
            return i
        return i

ESC = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0"}
def parse_string(i):
    # one or more adjacent literals, each "..." or u8"..." or U8C("...")
    out = []
    while True:
        while src[i].isspace(): i += 1
        wrapped = False
        if src.startswith('U8C(', i): i += 4; wrapped = True
        if src.startswith('u8"', i): i += 2
        if src[i] != '"': break
        i += 1
        while src[i] != '"':
            if src[i] == "\\":
                out.append(ESC[src[i+1]]); i += 2
            else:
                out.append(src[i]); i += 1
        i += 1
        if wrapped:
            while src[i].isspace(): i += 1
            assert src[i] == ")"; i += 1
    return "".join(out), i

cases = []
while True:
    while src[i].isspace() or src[i] == ",": i += 1
    if src.startswith("//", i): i = src.index("\n", i); continue
    if src[i] == "}": break
    assert src[i] == "{", src[i:i+50]
    i += 1
    case = {}
    while True:
        while src[i].isspace() or src[i] == ",": i += 1
        if src.startswith("//", i): i = src.index("\n", i); continue
        if src[i] == "}": i += 1; break
        m = re.compile(r"/\*\s*\.(\w+)=?\s*\*/").match(src, i)
        assert m, src[i:i+80]
        field = m.group(1); i = m.end()
        while src[i].isspace(): i += 1
        if src.startswith("true", i): case[field] = True; i += 4
        elif src.startswith("false", i): case[field] = False; i += 5
        elif src[i] == "{":
            # {{"role", "content"}, ...}
            i += 1; conv = []
            while True:
                while src[i].isspace() or src[i] == ",": i += 1
                if src[i] == "}": i += 1; break
                assert src[i] == "{"; i += 1
                role, i = parse_string(i)
                while src[i].isspace() or src[i] == ",": i += 1
                content, i = parse_string(i)
                while src[i].isspace(): i += 1
                assert src[i] == "}"; i += 1
                conv.append({"role": role, "content": content})
            case[field] = conv
        else:
            case[field], i = parse_string(i)
        # trailing comment after a value
        while src[i] in " \t,": i += 1
        if src.startswith("//", i): i = src.index("\n", i)
    cases.append(case)
print(json.dumps({"source": "llama.cpp tests/test-chat-template.cpp (main_automated_tests: conversation and test_cases), MIT",
  "conversation": [
        {"role":"system","content":"You are a helpful assistant"},
        {"role":"user","content":"Hello"},
        {"role":"assistant","content":"Hi there"},
        {"role":"user","content":"Who are you"},
        {"role":"assistant","content":"   I am an assistant   "},
        {"role":"user","content":"Another question"}],
  "cases": cases}, ensure_ascii=False, indent=1))
