// Package awsfake is an in-process stand-in for the parts of the EC2 Query
// API and the SSM JSON API that medcad runner calls, reached through the
// real aws-sdk-go-v2 clients (BaseEndpoint = Server.URL). It keeps
// instances and parameters as state, moves instances through their
// lifecycle on each DescribeInstances, and injects the faults users meet
// (capacity per availability zone, vCPU and spot quotas, throttling, a
// failed terminate, spot kills with their StateReason).
//
// It is a fake because nothing EC2-compatible runs on these machines:
// moto and LocalStack cannot be installed here and the Go EC2 fakes are
// refused by the module proxy. It checks what every medcad launch must
// carry (IMDSv2 required, terminate on shutdown, the run tag) and
// reports a launch without them as a test failure.
package awsfake

import (
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// RunTag is the tag every launch must carry (the workflow run it is for).
const RunTag = "medcad:run"

// Instance is an instance as the fake holds it.
type Instance struct {
	ID, Type, Subnet, AZ, Market string // Market: "spot" or "on-demand"
	State                        string // pending, running, shutting-down, terminated
	Tags                         map[string]string
	Launched                     time.Time
	UserData                     string     // decoded
	Params                       url.Values // the RunInstances request as sent
	ReasonCode, ReasonMessage    string
}

// Parameter is an SSM parameter.
type Parameter struct {
	Name, Type, Value string
	Version           int64
}

// Fault is an error the fake answers with.
type Fault struct {
	Code   string // e.g. InsufficientInstanceCapacity
	Status int    // HTTP status; 0: 400
}

// Server is a running fake. Its methods are safe for concurrent use.
type Server struct {
	URL string

	t          testing.TB
	mu         sync.Mutex
	now        func() time.Time
	subnets    map[string]string // subnet → AZ
	instances  []*Instance
	params     map[string]*Parameter
	gets       []string // parameters read with decryption
	next       int
	capacity   map[string]bool // AZ/type out of capacity ("az" or "az/type")
	vcpu       map[string]bool // instance type over the vCPU quota
	spotQuota  bool
	throttle   int
	failTerm   map[string]int // instance → terminations still to fail
	calls      map[string]int
	pageSize   int
	spotPrices map[string]float64
}

// Options configure a Server.
type Options struct {
	// Subnets maps subnet IDs to their availability zones; a launch
	// without a subnet lands in DefaultAZ.
	Subnets  map[string]string
	PageSize int              // DescribeInstances page size; 0: 2, so the paginator is exercised
	Now      func() time.Time // nil: time.Now
	// SpotPrices answers DescribeSpotPriceHistory, USD an hour by type.
	SpotPrices map[string]float64
}

// DefaultAZ is where launches without a subnet go.
const DefaultAZ = "us-east-1a"

// Start starts a fake for t; it stops at cleanup.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if o.PageSize <= 0 {
		o.PageSize = 2
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{t: t, now: o.Now, subnets: o.Subnets, params: map[string]*Parameter{}, capacity: map[string]bool{},
		vcpu: map[string]bool{}, failTerm: map[string]int{}, calls: map[string]int{}, pageSize: o.PageSize, spotPrices: o.SpotPrices}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// NoCapacity makes launches in az fail with InsufficientInstanceCapacity:
// every type, or only those named.
func (s *Server) NoCapacity(az string, types ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(types) == 0 {
		s.capacity[az] = true
	}
	for _, t := range types {
		s.capacity[az+"/"+t] = true
	}
}

// VcpuLimit makes launches of instanceType fail with VcpuLimitExceeded.
func (s *Server) VcpuLimit(instanceType string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vcpu[instanceType] = true
}

// SpotQuota makes spot launches fail with MaxSpotInstanceCountExceeded.
func (s *Server) SpotQuota() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.spotQuota = true
}

// Throttle answers the next n EC2 requests with RequestLimitExceeded.
func (s *Server) Throttle(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttle = n
}

// FailTerminate makes the next n terminations of instance id fail.
func (s *Server) FailTerminate(id string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failTerm[id] = n
}

// SpotKill terminates a spot instance as EC2 does when it reclaims it.
func (s *Server) SpotKill(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in := s.find(id); in != nil {
		in.State = "terminated"
		in.ReasonCode, in.ReasonMessage = "Server.SpotInstanceTermination", "Server.SpotInstanceTermination: Spot instance termination"
	}
}

// AddInstance adds an instance as if launched earlier (e.g. by another
// run), returning its ID (in.ID, or a new one).
func (s *Server) AddInstance(in Instance) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in.ID == "" {
		s.next++
		in.ID = fmt.Sprintf("i-%017x", s.next)
	}
	if in.State == "" {
		in.State = "running"
	}
	if in.Launched.IsZero() {
		in.Launched = s.now()
	}
	s.instances = append(s.instances, &in)
	return in.ID
}

// Instances returns copies of every instance, in launch order.
func (s *Server) Instances() []Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Instance, len(s.instances))
	for i, in := range s.instances {
		out[i] = *in
	}
	return out
}

// Instance returns a copy of instance id (zero when unknown).
func (s *Server) Instance(id string) Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in := s.find(id); in != nil {
		return *in
	}
	return Instance{}
}

// Parameters returns copies of the stored SSM parameters by name.
func (s *Server) Parameters() map[string]Parameter {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]Parameter{}
	for k, p := range s.params {
		out[k] = *p
	}
	return out
}

// PutParameter stores a parameter as another writer would.
func (s *Server) PutParameter(p Parameter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p.Version = 1
	s.params[p.Name] = &p
}

// Calls is how many times op (e.g. "RunInstances") was called.
func (s *Server) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

func (s *Server) find(id string) *Instance {
	for _, in := range s.instances {
		if in.ID == id {
			return in
		}
	}
	return nil
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		s.ec2Error(w, Fault{"AuthFailure", 401}, "request not signed")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if target := r.Header.Get("X-Amz-Target"); target != "" {
		s.serveSSM(w, strings.TrimPrefix(target, "AmazonSSM."), body)
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		s.ec2Error(w, Fault{"MalformedQueryString", 400}, err.Error())
		return
	}
	op := form.Get("Action")
	s.calls[op]++
	if s.throttle > 0 {
		s.throttle--
		s.ec2Error(w, Fault{"RequestLimitExceeded", 503}, "Request limit exceeded.")
		return
	}
	switch op {
	case "RunInstances":
		s.runInstances(w, form)
	case "DescribeInstances":
		s.describeInstances(w, form)
	case "TerminateInstances":
		s.terminateInstances(w, form)
	case "CreateTags":
		s.createTags(w, form)
	case "DescribeSpotPriceHistory":
		s.spotPriceHistory(w, form)
	default:
		s.ec2Error(w, Fault{"InvalidAction", 400}, "the fake does not implement "+op)
	}
}

// list reads a query list: prefix.1, prefix.2, … (or prefix.N.suffix).
func list(form url.Values, prefix, suffix string) []string {
	var out []string
	for i := 1; ; i++ {
		k := prefix + "." + strconv.Itoa(i) + suffix
		if _, ok := form[k]; !ok {
			return out
		}
		out = append(out, form.Get(k))
	}
}

func (s *Server) runInstances(w http.ResponseWriter, form url.Values) {
	tags := map[string]string{}
	for i := 1; form.Has(fmt.Sprintf("TagSpecification.%d.ResourceType", i)); i++ {
		if form.Get(fmt.Sprintf("TagSpecification.%d.ResourceType", i)) != "instance" {
			continue
		}
		p := fmt.Sprintf("TagSpecification.%d.Tag", i)
		keys, vals := list(form, p, ".Key"), list(form, p, ".Value")
		for j, k := range keys {
			tags[k] = vals[j]
		}
	}
	var missing []string
	if form.Get("MetadataOptions.HttpTokens") != "required" {
		missing = append(missing, "MetadataOptions.HttpTokens=required")
	}
	if form.Get("InstanceInitiatedShutdownBehavior") != "terminate" {
		missing = append(missing, "InstanceInitiatedShutdownBehavior=terminate")
	}
	if tags[RunTag] == "" {
		missing = append(missing, "the "+RunTag+" tag")
	}
	if len(missing) > 0 {
		s.t.Errorf("awsfake: RunInstances without %s", strings.Join(missing, ", "))
		s.ec2Error(w, Fault{"InvalidParameterValue", 400}, "launch without "+strings.Join(missing, ", "))
		return
	}
	typ := form.Get("InstanceType")
	subnet := form.Get("SubnetId")
	if subnet == "" {
		subnet = form.Get("NetworkInterface.1.SubnetId")
	}
	az := DefaultAZ
	if subnet != "" {
		var ok bool
		if az, ok = s.subnets[subnet]; !ok {
			s.ec2Error(w, Fault{"InvalidSubnetID.NotFound", 400}, fmt.Sprintf("The subnet ID '%s' does not exist", subnet))
			return
		}
	}
	market := "on-demand"
	if form.Get("InstanceMarketOptions.MarketType") == "spot" {
		market = "spot"
	}
	switch {
	case market == "spot" && s.spotQuota:
		s.ec2Error(w, Fault{"MaxSpotInstanceCountExceeded", 400}, "Max spot instance count exceeded")
		return
	case s.vcpu[typ]:
		s.ec2Error(w, Fault{"VcpuLimitExceeded", 400}, "You have requested more vCPU capacity than your current vCPU limit allows")
		return
	case s.capacity[az] || s.capacity[az+"/"+typ]:
		s.ec2Error(w, Fault{"InsufficientInstanceCapacity", 400}, fmt.Sprintf("We currently do not have sufficient %s capacity in the Availability Zone you requested (%s).", typ, az))
		return
	}
	ud, err := base64.StdEncoding.DecodeString(form.Get("UserData"))
	if err != nil {
		s.ec2Error(w, Fault{"InvalidParameterValue", 400}, "user data is not base64")
		return
	}
	if len(form.Get("UserData")) > 16<<10 {
		s.ec2Error(w, Fault{"InvalidParameterValue", 400}, "User data is limited to 16384 bytes")
		return
	}
	s.next++
	in := &Instance{ID: fmt.Sprintf("i-%017x", s.next), Type: typ, Subnet: subnet, AZ: az, Market: market, State: "pending",
		Tags: tags, Launched: s.now().UTC().Truncate(time.Second), UserData: string(ud), Params: form}
	s.instances = append(s.instances, in)
	s.xml(w, "RunInstancesResponse", struct {
		ReservationID string        `xml:"reservationId"`
		Instances     []xmlInstance `xml:"instancesSet>item"`
	}{"r-" + in.ID[2:], []xmlInstance{toXML(in)}})
}

type xmlTag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

type xmlState struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

type xmlInstance struct {
	ID         string   `xml:"instanceId"`
	Type       string   `xml:"instanceType"`
	State      xmlState `xml:"instanceState"`
	AZ         string   `xml:"placement>availabilityZone"`
	Subnet     string   `xml:"subnetId,omitempty"`
	Launch     string   `xml:"launchTime"`
	Lifecycle  string   `xml:"instanceLifecycle,omitempty"`
	Tags       []xmlTag `xml:"tagSet>item"`
	ReasonCode string   `xml:"stateReason>code,omitempty"`
	ReasonMsg  string   `xml:"stateReason>message,omitempty"`
}

var stateCodes = map[string]int{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48}

func toXML(in *Instance) xmlInstance {
	x := xmlInstance{ID: in.ID, Type: in.Type, State: xmlState{stateCodes[in.State], in.State}, AZ: in.AZ, Subnet: in.Subnet,
		Launch: in.Launched.UTC().Format(time.RFC3339), ReasonCode: in.ReasonCode, ReasonMsg: in.ReasonMessage}
	if in.Market == "spot" {
		x.Lifecycle = "spot"
	}
	keys := make([]string, 0, len(in.Tags))
	for k := range in.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		x.Tags = append(x.Tags, xmlTag{k, in.Tags[k]})
	}
	return x
}

func (s *Server) matches(in *Instance, form url.Values, ids []string) bool {
	if len(ids) > 0 && !slices.Contains(ids, in.ID) {
		return false
	}
	for i := 1; form.Has(fmt.Sprintf("Filter.%d.Name", i)); i++ {
		name := form.Get(fmt.Sprintf("Filter.%d.Name", i))
		vals := list(form, fmt.Sprintf("Filter.%d.Value", i), "")
		var have string
		var ok bool
		switch {
		case strings.HasPrefix(name, "tag:"):
			have, ok = in.Tags[strings.TrimPrefix(name, "tag:")]
		case name == "tag-key":
			for _, v := range vals {
				if _, ok = in.Tags[v]; ok {
					break
				}
			}
			if !ok {
				return false
			}
			continue
		case name == "instance-state-name":
			have, ok = in.State, true
		case name == "instance-id":
			have, ok = in.ID, true
		default:
			s.t.Errorf("awsfake: DescribeInstances filter %q not implemented", name)
			return false
		}
		if !ok || !slices.ContainsFunc(vals, func(v string) bool { return globMatch(v, have) }) {
			return false
		}
	}
	return true
}

// globMatch matches EC2 filter values, where * and ? are wildcards.
func globMatch(pattern, s string) bool {
	re := "^" + strings.NewReplacer(`\*`, ".*", `\?`, ".").Replace(regexp.QuoteMeta(pattern)) + "$"
	ok, _ := regexp.MatchString(re, s)
	return ok
}

func (s *Server) describeInstances(w http.ResponseWriter, form url.Values) {
	ids := list(form, "InstanceId", "")
	for _, id := range ids {
		if s.find(id) == nil {
			s.ec2Error(w, Fault{"InvalidInstanceID.NotFound", 400}, fmt.Sprintf("The instance ID '%s' does not exist", id))
			return
		}
	}
	// Time passes between calls: pending instances boot, terminating
	// ones finish.
	for _, in := range s.instances {
		switch in.State {
		case "pending":
			in.State = "running"
		case "shutting-down":
			in.State = "terminated"
		}
	}
	var match []*Instance
	for _, in := range s.instances {
		if s.matches(in, form, ids) {
			match = append(match, in)
		}
	}
	start, _ := strconv.Atoi(form.Get("NextToken"))
	size := s.pageSize
	if n, _ := strconv.Atoi(form.Get("MaxResults")); n > 0 && n < size {
		size = n
	}
	type reservation struct {
		ID        string        `xml:"reservationId"`
		Instances []xmlInstance `xml:"instancesSet>item"`
	}
	var page []reservation
	end := min(start+size, len(match))
	for _, in := range match[min(start, len(match)):end] {
		page = append(page, reservation{"r-" + in.ID[2:], []xmlInstance{toXML(in)}})
	}
	next := ""
	if end < len(match) {
		next = strconv.Itoa(end)
	}
	s.xml(w, "DescribeInstancesResponse", struct {
		Reservations []reservation `xml:"reservationSet>item"`
		NextToken    string        `xml:"nextToken,omitempty"`
	}{page, next})
}

func (s *Server) terminateInstances(w http.ResponseWriter, form url.Values) {
	type change struct {
		ID   string   `xml:"instanceId"`
		Cur  xmlState `xml:"currentState"`
		Prev xmlState `xml:"previousState"`
	}
	var out []change
	ids := list(form, "InstanceId", "")
	for _, id := range ids {
		in := s.find(id)
		if in == nil {
			s.ec2Error(w, Fault{"InvalidInstanceID.NotFound", 400}, fmt.Sprintf("The instance ID '%s' does not exist", id))
			return
		}
		if s.failTerm[id] > 0 {
			s.failTerm[id]--
			s.ec2Error(w, Fault{"IncorrectInstanceState", 400}, fmt.Sprintf("The instance '%s' is not in a state from which it can be terminated.", id))
			return
		}
	}
	for _, id := range ids {
		in := s.find(id)
		prev := xmlState{stateCodes[in.State], in.State}
		if in.State != "terminated" {
			in.State = "shutting-down"
			if in.ReasonCode == "" {
				in.ReasonCode, in.ReasonMessage = "Client.UserInitiatedShutdown", "Client.UserInitiatedShutdown: User initiated shutdown"
			}
		}
		out = append(out, change{id, xmlState{stateCodes[in.State], in.State}, prev})
	}
	s.xml(w, "TerminateInstancesResponse", struct {
		Items []change `xml:"instancesSet>item"`
	}{out})
}

func (s *Server) createTags(w http.ResponseWriter, form url.Values) {
	ids := list(form, "ResourceId", "")
	keys, vals := list(form, "Tag", ".Key"), list(form, "Tag", ".Value")
	for _, id := range ids {
		in := s.find(id)
		if in == nil {
			s.ec2Error(w, Fault{"InvalidInstanceID.NotFound", 400}, fmt.Sprintf("The instance ID '%s' does not exist", id))
			return
		}
		for i, k := range keys {
			in.Tags[k] = vals[i]
		}
	}
	s.xml(w, "CreateTagsResponse", struct {
		Return bool `xml:"return"`
	}{true})
}

func (s *Server) spotPriceHistory(w http.ResponseWriter, form url.Values) {
	type price struct {
		Type  string `xml:"instanceType"`
		Desc  string `xml:"productDescription"`
		Price string `xml:"spotPrice"`
		Time  string `xml:"timestamp"`
		AZ    string `xml:"availabilityZone"`
	}
	var out []price
	for _, t := range list(form, "InstanceType", "") {
		if p, ok := s.spotPrices[t]; ok {
			out = append(out, price{t, "Linux/UNIX", strconv.FormatFloat(p, 'f', 6, 64), s.now().UTC().Format(time.RFC3339), DefaultAZ})
		}
	}
	s.xml(w, "DescribeSpotPriceHistoryResponse", struct {
		Prices []price `xml:"spotPriceHistorySet>item"`
	}{out})
}

func (s *Server) xml(w http.ResponseWriter, root string, v any) {
	var b strings.Builder
	b.WriteString(xml.Header)
	start := xml.StartElement{Name: xml.Name{Local: root}, Attr: []xml.Attr{{Name: xml.Name{Local: "xmlns"}, Value: "http://ec2.amazonaws.com/doc/2016-11-15/"}}}
	if err := xml.NewEncoder(&b).EncodeElement(v, start); err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	io.WriteString(w, b.String())
}

func (s *Server) ec2Error(w http.ResponseWriter, f Fault, msg string) {
	if f.Status == 0 {
		f.Status = 400
	}
	var b strings.Builder
	xml.EscapeText(&b, []byte(msg))
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(f.Status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>fake</RequestID></Response>`, f.Code, b.String())
}

func (s *Server) serveSSM(w http.ResponseWriter, op string, body []byte) {
	s.calls["ssm:"+op]++
	var in struct {
		Name           string
		Value          string
		Type           string
		Overwrite      bool
		WithDecryption bool
	}
	if err := json.Unmarshal(body, &in); err != nil {
		s.ssmError(w, "ValidationException", err.Error())
		return
	}
	p := s.params[in.Name]
	switch op {
	case "PutParameter":
		if in.Type != "SecureString" {
			s.t.Errorf("awsfake: PutParameter %s as %q, want SecureString", in.Name, in.Type)
		}
		if p != nil && !in.Overwrite {
			s.ssmError(w, "ParameterAlreadyExists", "The parameter already exists.")
			return
		}
		v := int64(1)
		if p != nil {
			v = p.Version + 1
		}
		s.params[in.Name] = &Parameter{Name: in.Name, Type: in.Type, Value: in.Value, Version: v}
		s.ssmJSON(w, map[string]any{"Version": v, "Tier": "Standard"})
	case "GetParameter":
		if p == nil {
			s.ssmError(w, "ParameterNotFound", "")
			return
		}
		val := p.Value
		if p.Type == "SecureString" && !in.WithDecryption {
			val = base64.StdEncoding.EncodeToString([]byte("kms:" + p.Value))
		}
		s.ssmJSON(w, map[string]any{"Parameter": map[string]any{"Name": p.Name, "Type": p.Type, "Value": val, "Version": p.Version}})
	case "DeleteParameter":
		if p == nil {
			s.ssmError(w, "ParameterNotFound", "")
			return
		}
		delete(s.params, in.Name)
		s.ssmJSON(w, map[string]any{})
	default:
		s.ssmError(w, "InvalidAction", "the fake does not implement "+op)
	}
}

func (s *Server) ssmJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	json.NewEncoder(w).Encode(v)
}

func (s *Server) ssmError(w http.ResponseWriter, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(400)
	json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": msg})
}

// DeleteParameterAs deletes a parameter as its reader would.
func (s *Server) DeleteParameterAs(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.params, name)
}
