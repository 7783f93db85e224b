-- Argo CD health of SegmentException and AccessGrant, from the phase medseg writes.
-- Tested against objects medseg wrote (test/integration/health_test.go).
hs = {status = "Progressing", message = "Waiting for medseg"}
if obj.status == nil or obj.status.phase == nil then return hs end
if obj.status.observedGeneration ~= nil and obj.metadata.generation ~= nil
   and obj.status.observedGeneration < obj.metadata.generation then
  hs.message = "medseg has not observed the latest spec yet"
  return hs
end
local msg = obj.status.message or ""
if obj.status.phase == "Active" then return {status = "Healthy", message = msg} end
if obj.status.phase == "Pending" then return {status = "Progressing", message = msg} end
if obj.status.phase == "Expired" then return {status = "Suspended", message = "Expired: " .. msg} end
if obj.status.phase == "Ineffective" then
  return {status = "Degraded", message = (obj.status.reason or "Ineffective") .. ": " .. msg}
end
return hs
