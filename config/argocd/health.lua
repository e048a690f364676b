-- Argo CD health of a compute.k0rdent.ai Instance, from the kstatus
-- conditions the operator writes (Ready, Reconciling, Stalled, Paused) and
-- observedGeneration. Argo CD runs argocd-cm scripts without Lua's string
-- library, so this uses only the base language.
local hs = { status = "Progressing", message = "Waiting for the operator to report the instance's status" }

local function condition(conditions, type)
  for _, c in ipairs(conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local function describe(c)
  local m = c.reason or ""
  if c.message ~= nil and c.message ~= "" then
    m = m .. ": " .. c.message
  end
  return m
end

if obj.metadata.deletionTimestamp ~= nil then
  hs.message = "The instance is being deleted"
  if obj.status ~= nil and obj.status.lifecycle ~= nil and obj.status.lifecycle.statusMessage ~= nil then
    hs.message = hs.message .. ": " .. obj.status.lifecycle.statusMessage
  end
  return hs
end
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
local conditions = obj.status.conditions

-- Paused first: a paused instance never observes a new generation.
local paused = condition(conditions, "Paused")
if paused ~= nil and paused.status == "True" then
  hs.status = "Suspended"
  hs.message = "Paused: " .. describe(paused)
  return hs
end

local generation = obj.metadata.generation or 0
local observed = obj.status.observedGeneration or 0
if observed < generation then
  hs.message = "Waiting for the operator to observe generation " .. generation .. " (observed " .. observed .. ")"
  return hs
end

local stalled = condition(conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

local reconciling = condition(conditions, "Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = describe(reconciling)
  return hs
end

local ready = condition(conditions, "Ready")
if ready ~= nil and ready.status == "True" then
  if ready.reason == "Stopped" or ready.reason == "Suspended" then
    hs.status = "Suspended"
  else
    hs.status = "Healthy"
  end
  hs.message = describe(ready)
  return hs
end
if ready ~= nil then
  hs.message = describe(ready)
end
return hs
