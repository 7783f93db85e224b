-- Argo CD health of MedicalDevice and SegmentPolicy, from medseg's kstatus conditions.
-- Tested against objects medseg wrote (test/integration/health_test.go).
hs = {status = "Progressing", message = "Waiting for medseg"}
if obj.status == nil or obj.status.conditions == nil then return hs end
if obj.status.observedGeneration ~= nil and obj.metadata.generation ~= nil
   and obj.status.observedGeneration < obj.metadata.generation then
  hs.message = "medseg has not observed the latest spec yet"
  return hs
end
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Stalled" and c.status == "True" then
    return {status = "Degraded", message = c.reason .. ": " .. c.message}
  end
end
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Reconciling" and c.status == "True" then
    return {status = "Progressing", message = c.message}
  end
end
-- A SegmentPolicy in Audit is a deliberate rollout stage: nothing is enforced yet.
if obj.kind == "SegmentPolicy" and obj.spec ~= nil and obj.spec.enforcement == "Audit" then
  for _, c in ipairs(obj.status.conditions) do
    if c.type == "Ready" and c.status == "True" then
      return {status = "Suspended", message = "Audit: " .. c.message}
    end
  end
end
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Ready" and c.status == "True" then
    return {status = "Healthy", message = c.message}
  end
  if c.type == "Ready" and c.status == "False" then
    return {status = "Degraded", message = c.reason .. ": " .. c.message}
  end
end
return hs
