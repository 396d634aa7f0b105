#include <rszshm.hpp>
#include <map>
#include <mutex>
#include <vector>
using str = std::basic_string<char, std::char_traits<char>, rsz::allocator<char>>;
using vec = std::vector<int, rsz::allocator<int>>;
using table = std::map<str, vec, std::less<str>, std::scoped_allocator_adaptor<rsz::allocator<std::pair<const str, vec>>>>;
int main(){ rsz::region r; std::error_code ec; auto q = rsz::region::open("/nonexist/x", rsz::options{}, ec); (void)q;
 if(0){ table *t = r.find_or_construct<table>("t", r.get_allocator<int>()); (*t)[str("a", r.get_allocator<char>())].push_back(1); r.destroy<table>("t"); rsz::lock_guard g(r); std::unique_lock<rsz::user_lock> ul; }
 return ec.value()==ENOENT?0:1; }
