// Drives the Azure emulator with go-autorest/adal the way aad-pod-identity's MIC does: service-principal token
// (v1 endpoint, ?api-version=1.0), GET VM, PATCH identity + WaitForCompletionRef (the LRO tracker), and a PATCH
// that must fail with FailedIdentityOperation. Prints one JSON object. Used by tests/azure/emulator_selftest.py.
// usage: gocheck AAD_URL ARM_URL TENANT CLIENT_ID SECRET VM_PATH UAMI_ID
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/Azure/go-autorest/autorest"
	"github.com/Azure/go-autorest/autorest/adal"
	"github.com/Azure/go-autorest/autorest/azure"
)

func main() {
	aad, arm, tenant, cid, secret, vmPath, uami := os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5], os.Args[6], os.Args[7]
	out := map[string]string{}
	oc, err := adal.NewOAuthConfig(aad+"/", tenant)
	must(err)
	spt, err := adal.NewServicePrincipalToken(*oc, cid, secret, "https://management.azure.com/")
	must(err)
	if err := spt.Refresh(); err != nil {
		out["sp_token"] = "ERR " + err.Error()
	} else {
		out["sp_token"] = "ok"
	}
	client := autorest.NewClientWithUserAgent("go-check")
	client.Authorizer = autorest.NewBearerAuthorizer(spt)
	client.PollingDelay = 5 * time.Second
	client.PollingDuration = 60 * time.Second
	ctx := context.Background()
	url := arm + vmPath + "?api-version=2019-12-01"
	req, _ := http.NewRequest("GET", url, nil)
	req, err = autorest.Prepare(req, client.WithAuthorization())
	must(err)
	resp, err := client.Do(req)
	must(err)
	var vm map[string]interface{}
	err = autorest.Respond(resp, azure.WithErrorUnlessStatusCode(http.StatusOK), autorest.ByUnmarshallingJSON(&vm), autorest.ByClosing())
	out["get"] = fmt.Sprint(err)
	body := map[string]interface{}{"identity": map[string]interface{}{"type": "UserAssigned", "userAssignedIdentities": map[string]interface{}{uami: struct{}{}}}}
	preq, err := autorest.Prepare(&http.Request{}, autorest.AsContentType("application/json; charset=utf-8"), autorest.AsPatch(),
		autorest.WithBaseURL(url), autorest.WithJSON(body), client.WithAuthorization())
	must(err)
	presp, err := client.Do(preq)
	must(err)
	fut, err := azure.NewFutureFromResponse(presp)
	if err != nil {
		out["patch"] = "ERR " + err.Error()
	} else {
		start := time.Now()
		err = fut.WaitForCompletionRef(ctx, client)
		out["patch"] = fmt.Sprintf("%v after %.1fs status=%s", err, time.Since(start).Seconds(), fut.Status())
	}
	// a patch that fails with FailedIdentityOperation: error text must carry code and the id list
	body2 := map[string]interface{}{"identity": map[string]interface{}{"type": "UserAssigned", "userAssignedIdentities": map[string]interface{}{uami + "-ghost": struct{}{}}}}
	preq2, _ := autorest.Prepare(&http.Request{}, autorest.AsContentType("application/json; charset=utf-8"), autorest.AsPatch(),
		autorest.WithBaseURL(url), autorest.WithJSON(body2), client.WithAuthorization())
	presp2, err := client.Do(preq2)
	must(err)
	_, err = azure.NewFutureFromResponse(presp2)
	out["patch_ghost"] = fmt.Sprint(err)
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}
