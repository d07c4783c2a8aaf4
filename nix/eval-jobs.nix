# Flattens a (nested) attribute set of release jobs into a list releng reads as JSON:
# [ { attr = "build.x86_64-linux"; drvPath; system; outputs = { out = "/nix/store/..."; }; } ]
# Used when nix-eval-jobs is not on PATH (Debian's Nix); evaluates with plain nix-instantiate / nix eval.
{ jobs }:
let
  isDerivation = v: builtins.isAttrs v && (v.type or null) == "derivation";
  outputsOf = d: builtins.listToAttrs (map (o: { name = o; value = d.${o}.outPath; }) (d.outputs or [ "out" ]));
  walk = prefix: v:
    if isDerivation v then [{ attr = prefix; drvPath = v.drvPath; system = v.system; name = v.name; outputs = outputsOf v; }]
    else if builtins.isAttrs v && !(v ? recurseForDerivations && !v.recurseForDerivations) then
      builtins.concatLists (map (n: walk (if prefix == "" then n else "${prefix}.${n}") v.${n}) (builtins.attrNames v))
    else [ ];
in
walk "" jobs
